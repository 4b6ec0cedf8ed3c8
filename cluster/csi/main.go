// drover-csi is the local cluster's volume driver. The Kubernetes CSI host-path driver is
// not served by the Go module proxy (every tag and commit answers 403), and kind's
// local-path volumes can neither grow nor be snapshotted, so the cluster has this one.
//
// A volume is a sparse file in a directory every kind node mounts from the host, so any
// node can mount any volume (as with network storage). The node that mounts it attaches
// the file to a loop device and mounts it as XFS, which grows online without
// CAP_SYS_RESOURCE (ext4's online resize needs it, and the sandbox lacks it). A snapshot
// is a copy of the file after sync(2): the nodes share one kernel, so one sync reaches
// every node's writes.
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
)

// driverName is the CSI driver's name, as CSIDriver, StorageClass and PVs name it.
const driverName = "loop.csi.drover.dev"

// version is stamped at build time.
var version = "dev"

func main() {
	mode := flag.String("mode", "", "controller (provisioning, snapshots) or node (mounts, growth)")
	endpoint := flag.String("endpoint", "unix:///csi/csi.sock", "the CSI socket the sidecars or the kubelet dial")
	root := flag.String("root", "/var/lib/drover-csi", "the directory all nodes share, where volume and snapshot files live")
	nodeID := flag.String("node-id", "", "this node's name (node mode)")
	registration := flag.String("registration", "", "the kubelet plugin-registration socket to serve (node mode)")
	nodeRoot := flag.String("node-root", "/node", "where the node's root filesystem is mounted (node mode): mounts run in its namespace")
	flag.Parse()

	store := &store{root: *root}
	srv := &server{store: store}
	switch *mode {
	case "controller":
		if err := store.init(); err != nil {
			log.Fatalf("preparing %s: %v", *root, err)
		}
	case "node":
		if *nodeID == "" || *registration == "" {
			log.Fatal("node mode needs --node-id and --registration")
		}
		srv.node = &node{id: *nodeID, store: store, host: host{root: *nodeRoot, mountNS: "/proc/1/ns/mnt"}}
	default:
		log.Fatalf("--mode must be controller or node, not %q", *mode)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	g := grpc.NewServer(grpc.UnaryInterceptor(logCalls))
	csi.RegisterIdentityServer(g, srv)
	csi.RegisterControllerServer(g, srv)
	csi.RegisterNodeServer(g, srv)
	serve(g, strings.TrimPrefix(*endpoint, "unix://"))

	if srv.node != nil {
		reg := grpc.NewServer()
		registerWithKubelet(reg, strings.TrimPrefix(*endpoint, "unix://"), stop)
		serve(reg, *registration)
		defer reg.Stop()
	}
	log.Printf("%s %s serving in %s mode", driverName, version, *mode)
	<-ctx.Done()
	g.GracefulStop()
}

// serve listens on a Unix socket (replacing one left by an earlier run) in the background.
func serve(g *grpc.Server, path string) {
	if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
		log.Fatalf("removing the old socket %s: %v", path, err)
	}
	listener, err := net.Listen("unix", path)
	if err != nil {
		log.Fatalf("listening on %s: %v", path, err)
	}
	go func() {
		if err := g.Serve(listener); err != nil {
			log.Fatalf("serving %s: %v", path, err)
		}
	}()
}

// logCalls logs every call that changes something, and every failure.
func logCalls(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	resp, err := handler(ctx, req)
	quiet := strings.HasSuffix(info.FullMethod, "Capabilities") || strings.HasSuffix(info.FullMethod, "/Probe") ||
		strings.HasSuffix(info.FullMethod, "Info")
	if err != nil {
		log.Printf("%s %v: %v", info.FullMethod, req, err)
	} else if !quiet {
		log.Printf("%s %v: ok", info.FullMethod, req)
	}
	return resp, err
}
