{
  "targets": [
    {
      "target_name": "wsgid_native",
      "sources": ["chroot.c", "fds.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
