/*
 * dup2(2), which Node does not expose: logrotate's USR1 must point the master's own fd 1 and 2
 * (where Node writes uncaught errors and warnings) at the reopened log file.
 *   dup2(oldfd: number, newfd: number): void  -- throws Error{code, errno, syscall} on failure.
 * Registered by init() in chroot.c (the module's one init); used by src/app-folder/stdio.ts.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>

#include "errors.h"

static napi_value do_dup2(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  int32_t oldfd = -1, newfd = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_int32(env, argv[0], &oldfd) != napi_ok || napi_get_value_int32(env, argv[1], &newfd) != napi_ok ||
      oldfd < 0 || newfd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "dup2(oldfd, newfd): two file descriptors");
    return NULL;
  }
  int r;
  do {
    r = dup2(oldfd, newfd);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    int e = errno;
    char text[128];
    snprintf(text, sizeof text, "dup2(%d, %d): %s", (int)oldfd, (int)newfd, strerror(e));
    return wsgid_throw_system_error(env, e == EBADF ? "EBADF" : "EDUP2", text, e, "dup2");
  }
  return NULL;
}

napi_value wsgid_register_fds(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "dup2", NAPI_AUTO_LENGTH, do_dup2, NULL, &fn);
  napi_set_named_property(env, exports, "dup2", fn);
  return exports;
}
