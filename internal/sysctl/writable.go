package sysctl

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// EnsureWritable makes /proc/sys writable for this process's mount
// namespace if it is mounted read-only, and does nothing if it is writable
// already.
//
// Docker mounts /proc/sys read-only in containers and managed plugins: a
// read-only bind mount of /proc/sys onto itself. EnsureWritable first
// remounts that bind mount read-write (mount -o remount,bind,rw /proc/sys),
// keeping its nosuid/nodev/noexec flags. If /proc/sys is not a mount point of
// its own (the whole of /proc is read-only) the remount fails with EINVAL;
// it then bind-mounts /proc/sys onto itself and remounts the new mount
// read-write, leaving the rest of /proc read-only. Only the mount's flags
// change, never procfs itself, and only in the caller's mount namespace.
//
// It needs CAP_SYS_ADMIN (a managed plugin asks for it in its config.json
// "linux.capabilities"). Errors say which step failed.
func EnsureWritable() error {
	return ensureWritable(Root)
}

// ensureWritable is EnsureWritable for any mount point, so that the logic can
// be exercised on a path other than the real /proc/sys.
func ensureWritable(dir string) error {
	ro, flags, err := readOnly(dir)
	if err != nil {
		return err
	}
	if !ro {
		return nil
	}
	keep := keptFlags(flags)
	err = unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|keep, "")
	if errors.Is(err, unix.EINVAL) {
		// dir is no mount point (its read-only flag comes from a mount
		// above it): give it a mount of its own, then make that writable.
		if berr := unix.Mount(dir, dir, "", unix.MS_BIND|unix.MS_REC, ""); berr != nil {
			return fmt.Errorf("sysctl: %s is read-only and is not a mount point; bind-mounting it onto itself "+
				"failed: %w (needs CAP_SYS_ADMIN)", dir, berr)
		}
		err = unix.Mount("", dir, "", unix.MS_REMOUNT|unix.MS_BIND|keep, "")
	}
	if err != nil {
		return fmt.Errorf("sysctl: %s is mounted read-only and remounting it read-write failed: %w "+
			"(needs CAP_SYS_ADMIN; in a Docker managed plugin add CAP_SYS_ADMIN to config.json "+
			"linux.capabilities)", dir, err)
	}
	ro, _, err = readOnly(dir)
	if err != nil {
		return err
	}
	if ro {
		return fmt.Errorf("sysctl: %s is still read-only after remounting it read-write "+
			"(the file system itself, not the mount, may be read-only)", dir)
	}
	return nil
}

func readOnly(dir string) (ro bool, flags int64, err error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, 0, fmt.Errorf("sysctl: statfs %s: %w (is /proc mounted?)", dir, err)
	}
	return st.Flags&unix.ST_RDONLY != 0, st.Flags, nil
}

// keptFlags maps the statfs flags that a bind remount must repeat (or it
// would clear them) to mount flags.
func keptFlags(st int64) uintptr {
	var m uintptr
	for _, f := range []struct {
		st int64
		ms uintptr
	}{
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if st&f.st != 0 {
			m |= f.ms
		}
	}
	return m
}
