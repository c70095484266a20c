/*
 * sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET, which Node cannot send (it has
 * no unix datagram sockets).
 *   notify(socketPath: string, message: string): void
 * socketPath is a filesystem path, or "@name" for an abstract socket (Linux); throws
 * Error{code, errno, syscall} on failure. Like sd_notify: a blocking send (systemd reads its
 * socket promptly), bounded here by a 2 s send timeout so a stuck listener cannot hang the master.
 * The kernel attaches the sender's credentials (systemd sets SO_PASSCRED on its end).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>
#include <node_api.h>

#include "errors.h"
#include "notify.h"

#define MAX_MESSAGE 4096

static napi_value throw_notify_error(napi_env env, const char *syscall, int e) {
  char text[256];
  const char *code = e == ENOENT ? "ENOENT" : e == ECONNREFUSED ? "ECONNREFUSED" : e == EACCES ? "EACCES" :
                     e == EAGAIN ? "EAGAIN" : e == EPERM ? "EPERM" : e == EMSGSIZE ? "EMSGSIZE" : "ENOTIFY";
  snprintf(text, sizeof text, "%s: %s (%s)", code, strerror(e), syscall);
  return wsgid_throw_system_error(env, code, text, e, syscall);
}

static napi_value do_notify(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  char path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
  char message[MAX_MESSAGE + 1];
  size_t path_length = 0, message_length = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 ||
      napi_get_value_string_utf8(env, argv[0], path, sizeof path, &path_length) != napi_ok ||
      napi_get_value_string_utf8(env, argv[1], message, sizeof message, &message_length) != napi_ok) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "notify(socketPath, message): both must be strings");
    return NULL;
  }
  struct sockaddr_un address;
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  /* A path must fit with its NUL; an abstract name fills sun_path without one. */
  if (path_length < 2 || path_length >= sizeof address.sun_path || (path[0] != '/' && path[0] != '@')) {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "notify(): the socket must be an absolute path or @abstract, shorter than 108 bytes");
    return NULL;
  }
  if (message_length == 0 || message_length >= MAX_MESSAGE) {
    napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "notify(): empty or too long message");
    return NULL;
  }
  memcpy(address.sun_path, path, path_length);
  if (path[0] == '@') address.sun_path[0] = '\0';
  socklen_t length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + path_length + (path[0] == '@' ? 0 : 1));

  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return throw_notify_error(env, "socket", errno);
  struct timeval timeout = { .tv_sec = 2, .tv_usec = 0 };
  (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
  ssize_t sent;
  do {
    sent = sendto(fd, message, message_length, MSG_NOSIGNAL, (struct sockaddr *)&address, length);
  } while (sent < 0 && errno == EINTR);
  int e = errno;
  close(fd);
  if (sent < 0) return throw_notify_error(env, "sendto", e);
  return NULL;
}

void register_notify(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "notify", NAPI_AUTO_LENGTH, do_notify, NULL, &fn);
  napi_set_named_property(env, exports, "notify", fn);
}
