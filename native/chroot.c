/*
 * wsgid's native code: what Node does not expose.
 *   chroot(path: string): void  -- chroot(path) then chdir("/"); throws Error{code, errno, syscall}.
 *   notify(socketPath, message): void -- native/notify.c: a datagram to systemd's $NOTIFY_SOCKET.
 * Built with node-gyp (`npm run build:native`); loaded by src/app-folder/privileges.ts.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <node_api.h>

#include "errors.h"
#include "notify.h"

static const char *errno_code(int e) {
  switch (e) {
    case EPERM: return "EPERM";
    case EACCES: return "EACCES";
    case ENOENT: return "ENOENT";
    case ENOTDIR: return "ENOTDIR";
    case ELOOP: return "ELOOP";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case EIO: return "EIO";
    case ENOMEM: return "ENOMEM";
    default: return "ECHROOT";
  }
}

static napi_value throw_errno(napi_env env, const char *syscall, const char *path, int e) {
  char text[PATH_MAX + 128];
  snprintf(text, sizeof text, "%s: %s '%s'", errno_code(e), strerror(e), path);
  return wsgid_throw_system_error(env, errno_code(e), text, e, syscall);
}

static napi_value do_chroot(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  char path[PATH_MAX];
  size_t length = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 1 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "chroot(path): path must be a string");
    return NULL;
  }
  if (length == 0 || length >= sizeof path - 1) {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "chroot(path): empty or too long path");
    return NULL;
  }
  if (chroot(path) != 0) return throw_errno(env, "chroot", path, errno);
  if (chdir("/") != 0) return throw_errno(env, "chdir", "/", errno);
  return NULL;
}

napi_value wsgid_register_fds(napi_env env, napi_value exports); /* fds.c */

static napi_value init(napi_env env, napi_value exports) {
  wsgid_register_fds(env, exports);
  napi_value fn;
  napi_create_function(env, "chroot", NAPI_AUTO_LENGTH, do_chroot, NULL, &fn);
  napi_set_named_property(env, exports, "chroot", fn);
  register_notify(env, exports);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
