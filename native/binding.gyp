{
  "targets": [
    {
      "target_name": "wsgid_native",
      "sources": ["chroot.c", "fds.c", "notify.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
