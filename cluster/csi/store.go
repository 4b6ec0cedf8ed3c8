package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// minSize is the smallest volume: XFS refuses file systems under 300 MiB.
const minSize int64 = 320 << 20

// store keeps volume and snapshot files under the directory the nodes share.
type store struct {
	root string
	// mu serialises the changes of this process (the sidecars may retry a call while
	// the first attempt still runs).
	mu sync.Mutex
}

func (s *store) init() error {
	for _, dir := range []string{s.volumes(), s.snapshots()} {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
	}
	return nil
}

func (s *store) volumes() string   { return filepath.Join(s.root, "volumes") }
func (s *store) snapshots() string { return filepath.Join(s.root, "snapshots") }

// volume is the file that holds a volume.
func (s *store) volume(id string) string { return filepath.Join(s.volumes(), id+".img") }

// holder names the node a volume is mounted on: a volume is mounted by one node at a time.
func (s *store) holder(id string) string { return filepath.Join(s.volumes(), id+".node") }

func (s *store) snapshot(id string) string { return filepath.Join(s.snapshots(), id+".img") }

// source names the volume a snapshot was taken of.
func (s *store) source(id string) string { return filepath.Join(s.snapshots(), id+".source") }

// validID refuses names that would leave the store's directories.
func validID(id string) error {
	if id == "" || strings.ContainsAny(id, "/\x00") || id == "." || id == ".." {
		return fmt.Errorf("invalid id %q", id)
	}
	return nil
}

// createVolume makes a volume of at least size bytes, empty or with a snapshot's
// contents, and returns its size. Made again with the same id, it returns the one made.
func (s *store) createVolume(id string, size int64, fromSnapshot string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	path := s.volume(id)
	if info, err := os.Stat(path); err == nil {
		return info.Size(), nil
	}
	size = max(size, minSize)
	tmp := path + ".tmp"
	if fromSnapshot != "" {
		info, err := os.Stat(s.snapshot(fromSnapshot))
		if err != nil {
			return 0, fmt.Errorf("snapshot %s: %w", fromSnapshot, err)
		}
		size = max(size, info.Size())
		if err := copySparse(s.snapshot(fromSnapshot), tmp); err != nil {
			return 0, err
		}
	}
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	// A size that grows a copied file leaves the rest sparse; the node grows the file
	// system to it when it mounts the volume.
	err = errors.Join(f.Truncate(size), f.Sync(), f.Close())
	if err != nil {
		return 0, err
	}
	return size, os.Rename(tmp, path)
}

func (s *store) deleteVolume(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, path := range []string{s.volume(id), s.holder(id), s.volume(id) + ".tmp"} {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

func (s *store) volumeSize(id string) (int64, error) {
	info, err := os.Stat(s.volume(id))
	if err != nil {
		return 0, err
	}
	return info.Size(), nil
}

// snapshotInfo is what a snapshot's caller learns of it.
type snapshotInfo struct {
	size    int64
	created int64 // Unix nanoseconds
	source  string
}

// createSnapshot copies a volume as it stands on disk, after flushing what every node
// has written to it; taken again with the same id, it returns the one taken.
func (s *store) createSnapshot(id, volume string) (snapshotInfo, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if info, err := s.snapshotInfo(id); err == nil {
		if info.source != volume {
			return snapshotInfo{}, errAlreadyExists{fmt.Sprintf("snapshot %s was taken of volume %s", id, info.source)}
		}
		return info, nil
	}
	if _, err := os.Stat(s.volume(volume)); err != nil {
		return snapshotInfo{}, fmt.Errorf("volume %s: %w", volume, err)
	}
	// The nodes are containers of one kernel: this flushes every node's dirty pages,
	// and the copy is what a crash at this moment would leave (XFS replays its log).
	unix.Sync()
	tmp := s.snapshot(id) + ".tmp"
	if err := copySparse(s.volume(volume), tmp); err != nil {
		return snapshotInfo{}, err
	}
	if err := os.WriteFile(s.source(id), []byte(volume), 0o600); err != nil {
		return snapshotInfo{}, err
	}
	if err := os.Rename(tmp, s.snapshot(id)); err != nil {
		return snapshotInfo{}, err
	}
	return s.snapshotInfo(id)
}

func (s *store) snapshotInfo(id string) (snapshotInfo, error) {
	info, err := os.Stat(s.snapshot(id))
	if err != nil {
		return snapshotInfo{}, err
	}
	source, err := os.ReadFile(s.source(id))
	if err != nil {
		return snapshotInfo{}, err
	}
	return snapshotInfo{size: info.Size(), created: info.ModTime().UnixNano(), source: string(source)}, nil
}

func (s *store) deleteSnapshot(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, path := range []string{s.snapshot(id), s.source(id), s.snapshot(id) + ".tmp"} {
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			return err
		}
	}
	return nil
}

type errAlreadyExists struct{ msg string }

func (e errAlreadyExists) Error() string { return e.msg }

// copySparse copies a file, leaving holes where the source reads as zeros (volume files
// are mostly holes; a plain copy would fill them).
func copySparse(from, to string) error {
	src, err := os.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	info, err := src.Stat()
	if err != nil {
		return err
	}
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, len(buf))
	var offset int64
	for {
		n, err := io.ReadFull(src, buf)
		if n > 0 {
			if !bytes.Equal(buf[:n], zero[:n]) {
				if _, werr := dst.WriteAt(buf[:n], offset); werr != nil {
					dst.Close()
					return werr
				}
			}
			offset += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			dst.Close()
			return err
		}
	}
	return errors.Join(dst.Truncate(info.Size()), dst.Sync(), dst.Close())
}
