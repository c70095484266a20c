/*
 * The Error every native function throws on a failed system call, shaped like Node's own:
 * Error{code, errno (negative, as libuv's), syscall}, message TEXT. Returns NULL for `return`.
 */
#ifndef WSGID_ERRORS_H
#define WSGID_ERRORS_H
#include <node_api.h>

static inline napi_value wsgid_throw_system_error(napi_env env, const char *code, const char *text, int e, const char *syscall) {
  napi_value code_value, message, error, number, name;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_value);
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_error(env, code_value, message, &error);
  napi_create_int32(env, -e, &number);
  napi_set_named_property(env, error, "errno", number);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &name);
  napi_set_named_property(env, error, "syscall", name);
  napi_throw(env, error);
  return NULL;
}
#endif
