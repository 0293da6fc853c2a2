package acl

import "syscall"

func unmount(path string) error { return syscall.Unmount(path, syscall.MNT_DETACH) }
