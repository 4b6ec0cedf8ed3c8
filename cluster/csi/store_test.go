package main

import (
	"bytes"
	"errors"
	"os"
	"testing"
)

func TestVolumeSnapshotRestore(t *testing.T) {
	s := &store{root: t.TempDir()}
	if err := s.init(); err != nil {
		t.Fatal(err)
	}
	size, err := s.createVolume("pv-1", 1<<20, "")
	if err != nil || size != minSize {
		t.Fatalf("a small volume is made at the minimum: %d, %v", size, err)
	}
	again, err := s.createVolume("pv-1", 2<<30, "")
	if err != nil || again != size {
		t.Fatalf("made again, the volume is the one made: %d, %v", again, err)
	}
	data := []byte("written before the snapshot")
	f, err := os.OpenFile(s.volume("pv-1"), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(data, 5<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()

	if _, err := s.createSnapshot("snap-1", "pv-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.createSnapshot("snap-1", "pv-2"); err == nil {
		t.Fatal("a snapshot id taken of another volume must be refused")
	}
	restored, err := s.createVolume("pv-2", 1<<30, "snap-1")
	if err != nil || restored != 1<<30 {
		t.Fatalf("restored at the size asked: %d, %v", restored, err)
	}
	got := make([]byte, len(data))
	r, err := os.Open(s.volume("pv-2"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if _, err := r.ReadAt(got, 5<<20); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("restored data %q, %v", got, err)
	}
	if _, err := s.createVolume("pv-3", 0, "missing"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("restoring a missing snapshot: %v", err)
	}
	for _, e := range []error{s.deleteSnapshot("snap-1"), s.deleteVolume("pv-1"), s.deleteVolume("pv-1")} {
		if e != nil {
			t.Fatalf("deleting (twice is fine): %v", e)
		}
	}
	if _, err := os.Stat(s.volume("pv-1")); !os.IsNotExist(err) {
		t.Fatalf("the volume's file stays: %v", err)
	}
	if err := validID("../etc"); err == nil {
		t.Fatal("an id with a slash must be refused")
	}
}
