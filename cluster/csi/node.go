package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// node mounts volumes on one node: the volume's file on a loop device, XFS on that,
// mounted at the kubelet's staging path and bound into each pod's path.
type node struct {
	id    string
	store *store
	host  host
	// mu serialises this node's changes: two stages of one volume must not attach it twice.
	mu sync.Mutex
}

// host runs the node's own tools in the node's mount namespace (the one the kubelet
// sees): chrooted into the node's root, through its nsenter into PID 1's namespace.
type host struct {
	root string
	// mountNS is the namespace to run in (PID 1's, the node's init).
	mountNS string
}

func (h host) run(args ...string) (string, error) {
	cmd := exec.Command("/usr/bin/nsenter", append([]string{"--mount=" + h.mountNS, "--"}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Chroot: h.root}
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// mounted says whether path is a mount point in the node's namespace.
func (h host) mounted(path string) bool {
	_, err := h.run("mountpoint", "-q", path)
	return err == nil
}

func (s *server) nodeOnly() (*node, error) {
	if s.node == nil {
		return nil, status.Error(codes.FailedPrecondition, "this is the controller; node calls go to the node plugin")
	}
	return s.node, nil
}

func (s *server) NodeGetCapabilities(context.Context, *csi.NodeGetCapabilitiesRequest) (*csi.NodeGetCapabilitiesResponse, error) {
	var caps []*csi.NodeServiceCapability
	for _, t := range []csi.NodeServiceCapability_RPC_Type{
		csi.NodeServiceCapability_RPC_STAGE_UNSTAGE_VOLUME,
		csi.NodeServiceCapability_RPC_EXPAND_VOLUME,
	} {
		caps = append(caps, &csi.NodeServiceCapability{Type: &csi.NodeServiceCapability_Rpc{
			Rpc: &csi.NodeServiceCapability_RPC{Type: t},
		}})
	}
	return &csi.NodeGetCapabilitiesResponse{Capabilities: caps}, nil
}

func (s *server) NodeGetInfo(context.Context, *csi.NodeGetInfoRequest) (*csi.NodeGetInfoResponse, error) {
	n, err := s.nodeOnly()
	if err != nil {
		return nil, err
	}
	// No topology: every node mounts the shared directory, so a volume goes anywhere.
	return &csi.NodeGetInfoResponse{NodeId: n.id}, nil
}

func (s *server) NodeStageVolume(_ context.Context, req *csi.NodeStageVolumeRequest) (*csi.NodeStageVolumeResponse, error) {
	n, err := s.nodeOnly()
	if err != nil {
		return nil, err
	}
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	if err := validID(id); err != nil || staging == "" {
		return nil, status.Errorf(codes.InvalidArgument, "volume id %q and staging path %q are needed", id, staging)
	}
	if err := checkCapabilities([]*csi.VolumeCapability{req.GetVolumeCapability()}); err != nil {
		return nil, err
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.hold(id); err != nil {
		return nil, err
	}
	device, err := n.attach(id)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if n.host.mounted(staging) {
		return &csi.NodeStageVolumeResponse{}, nil
	}
	// blkid exits 2 when the device holds no file system: a new volume.
	if _, err := n.host.run("blkid", "-p", device); err != nil {
		var exit *exec.ExitError
		if !errors.As(errors.Unwrap(err), &exit) || exit.ExitCode() != 2 {
			return nil, status.Error(codes.Internal, err.Error())
		}
		if _, err := n.host.run("mkfs.xfs", "-q", device); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if _, err := n.host.run("mkdir", "-p", staging); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	// nouuid: a volume restored from a snapshot has its source's UUID, and the nodes
	// share one kernel, which would refuse to mount both.
	if _, err := n.host.run("mount", "-t", "xfs", "-o", "nouuid", device, staging); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	// A volume made larger than its snapshot, or grown while unmounted, gets the rest now.
	if _, err := n.host.run("xfs_growfs", "-d", staging); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeStageVolumeResponse{}, nil
}

func (s *server) NodeUnstageVolume(_ context.Context, req *csi.NodeUnstageVolumeRequest) (*csi.NodeUnstageVolumeResponse, error) {
	n, err := s.nodeOnly()
	if err != nil {
		return nil, err
	}
	id, staging := req.GetVolumeId(), req.GetStagingTargetPath()
	if err := validID(id); err != nil || staging == "" {
		return nil, status.Errorf(codes.InvalidArgument, "volume id %q and staging path %q are needed", id, staging)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.host.mounted(staging) {
		if _, err := n.host.run("umount", staging); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	// The loop devices are the holder's to detach: after a takeover they are another
	// node's (this one's kubelet cleaning up after it was away).
	if n.holds(id) {
		devices, err := n.devices(id)
		if err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		for _, device := range devices {
			if _, err := n.host.run("losetup", "-d", device); err != nil {
				return nil, status.Error(codes.Internal, err.Error())
			}
		}
	}
	if err := n.release(id); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnstageVolumeResponse{}, nil
}

func (s *server) NodePublishVolume(_ context.Context, req *csi.NodePublishVolumeRequest) (*csi.NodePublishVolumeResponse, error) {
	n, err := s.nodeOnly()
	if err != nil {
		return nil, err
	}
	staging, target := req.GetStagingTargetPath(), req.GetTargetPath()
	if staging == "" || target == "" {
		return nil, status.Error(codes.InvalidArgument, "staging and target paths are needed")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.host.mounted(target) {
		return &csi.NodePublishVolumeResponse{}, nil
	}
	if _, err := n.host.run("mkdir", "-p", target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if _, err := n.host.run("mount", "--bind", staging, target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if req.GetReadonly() {
		if _, err := n.host.run("mount", "-o", "remount,bind,ro", target); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return &csi.NodePublishVolumeResponse{}, nil
}

func (s *server) NodeUnpublishVolume(_ context.Context, req *csi.NodeUnpublishVolumeRequest) (*csi.NodeUnpublishVolumeResponse, error) {
	n, err := s.nodeOnly()
	if err != nil {
		return nil, err
	}
	target := req.GetTargetPath()
	if target == "" {
		return nil, status.Error(codes.InvalidArgument, "the target path is needed")
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.host.mounted(target) {
		if _, err := n.host.run("umount", target); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	// Empty once unmounted: rm -d removes nothing else.
	if _, err := n.host.run("rm", "-df", target); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.NodeUnpublishVolumeResponse{}, nil
}

func (s *server) NodeExpandVolume(_ context.Context, req *csi.NodeExpandVolumeRequest) (*csi.NodeExpandVolumeResponse, error) {
	n, err := s.nodeOnly()
	if err != nil {
		return nil, err
	}
	id := req.GetVolumeId()
	if err := validID(id); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	path := req.GetStagingTargetPath()
	if path == "" {
		path = req.GetVolumePath()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	size, err := n.store.volumeSize(id)
	if err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	if want := req.GetCapacityRange().GetRequiredBytes(); want > size {
		if _, err := n.host.run("truncate", "-s", strconv.FormatInt(want, 10), n.store.volume(id)); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
		size = want
	}
	devices, err := n.devices(id)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	for _, device := range devices {
		if _, err := n.host.run("losetup", "-c", device); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	if path != "" && n.host.mounted(path) {
		if _, err := n.host.run("xfs_growfs", "-d", path); err != nil {
			return nil, status.Error(codes.Internal, err.Error())
		}
	}
	return &csi.NodeExpandVolumeResponse{CapacityBytes: size}, nil
}

// hold records this node as the volume's only user, or refuses while another node has
// it mounted (as single-attach storage refuses a second attachment). A holder whose
// mount is gone (its node container stopped, its kubelet never cleaned up) is taken
// over: the nodes share one kernel, which keeps a mounted device busy for everyone.
func (n *node) hold(id string) error {
	holder, err := os.ReadFile(n.store.holder(id))
	switch {
	case err == nil && string(holder) == n.id:
		return nil
	case err == nil:
		busy, err := n.mountedAnywhere(id)
		if err != nil {
			return status.Error(codes.Internal, err.Error())
		}
		if busy {
			return status.Errorf(codes.FailedPrecondition, "volume %s is mounted on node %s", id, holder)
		}
		log.Printf("volume %s: node %s holds it but has it mounted no more; taken over", id, holder)
		return n.claim(id, true)
	case !os.IsNotExist(err):
		return status.Error(codes.Internal, err.Error())
	}
	if _, err := os.Stat(n.store.volume(id)); err != nil {
		return status.Error(codes.NotFound, err.Error())
	}
	return n.claim(id, false)
}

// claim writes this node into the volume's holder file (replacing another's when told).
func (n *node) claim(id string, replace bool) error {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if !replace {
		flags |= os.O_EXCL
	}
	f, err := os.OpenFile(n.store.holder(id), flags, 0o600)
	if os.IsExist(err) {
		return n.hold(id)
	}
	if err != nil {
		return status.Error(codes.Internal, err.Error())
	}
	_, err = f.WriteString(n.id)
	return errors.Join(err, f.Close())
}

// mountedAnywhere says whether one of the volume's loop devices carries a mounted file
// system, on any node: the kernel refuses an exclusive open of a mounted device.
func (n *node) mountedAnywhere(id string) (bool, error) {
	devices, err := n.devices(id)
	if err != nil {
		return false, err
	}
	for _, device := range devices {
		path := filepath.Join(n.host.root, device)
		if err := n.ensureDeviceNode(device); err != nil {
			return false, err
		}
		fd, err := unix.Open(path, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.EBUSY) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("opening %s: %w", device, err)
		}
		unix.Close(fd)
	}
	return false, nil
}

// holds says whether this node holds the volume, or no node does.
func (n *node) holds(id string) bool {
	holder, err := os.ReadFile(n.store.holder(id))
	return os.IsNotExist(err) || (err == nil && string(holder) == n.id)
}

func (n *node) release(id string) error {
	holder, err := os.ReadFile(n.store.holder(id))
	if os.IsNotExist(err) || (err == nil && string(holder) != n.id) {
		return nil
	}
	if err != nil {
		return err
	}
	return os.Remove(n.store.holder(id))
}

// devices are the loop devices the volume's file is attached to.
func (n *node) devices(id string) ([]string, error) {
	out, err := n.host.run("losetup", "-n", "-O", "NAME", "-j", n.store.volume(id))
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// attach gives the volume's file a loop device, or the one it has. The node containers
// got a copy of the host's /dev when they started, so a loop device the kernel made
// since may have no node yet: it is made here. Two nodes may pick the same free device
// at once (one kernel): the loser tries again.
func (n *node) attach(id string) (string, error) {
	if devices, err := n.devices(id); err != nil || len(devices) > 0 {
		if err != nil {
			return "", err
		}
		return devices[0], nil
	}
	var last error
	for range 10 {
		free, err := n.host.run("losetup", "-f")
		if err != nil {
			return "", err
		}
		if err := n.ensureDeviceNode(free); err != nil {
			return "", err
		}
		if _, err := n.host.run("losetup", free, n.store.volume(id)); err != nil {
			last = err
			time.Sleep(200 * time.Millisecond)
			continue
		}
		return free, nil
	}
	return "", last
}

// ensureDeviceNode makes /dev/loopN in the node when the kernel has the device but the
// node's /dev (a copy made when its container started) does not.
func (n *node) ensureDeviceNode(device string) error {
	var minor int
	if _, err := fmt.Sscanf(device, "/dev/loop%d", &minor); err != nil {
		return fmt.Errorf("not a loop device: %q", device)
	}
	if _, err := n.host.run("test", "-b", device); err == nil {
		return nil
	}
	_, err := n.host.run("mknod", device, "b", "7", strconv.Itoa(minor))
	return err
}

func timeFromNanos(ns int64) time.Time { return time.Unix(0, ns) }
