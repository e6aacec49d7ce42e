//go:build unix

package main

import "syscall"

// restrictUmask makes every file and directory this process creates
// private to its user (the embedded broker's partition files among them).
func restrictUmask() { syscall.Umask(0o077) }
