package main

import (
	"context"
	"errors"
	"os"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// defaultSize is a volume's size when the claim asks for none.
const defaultSize int64 = 1 << 30

// server answers the CSI calls: identity and controller in both modes, node calls in
// node mode.
type server struct {
	csi.UnimplementedIdentityServer
	csi.UnimplementedControllerServer
	csi.UnimplementedNodeServer
	store *store
	node  *node
}

func (s *server) GetPluginInfo(context.Context, *csi.GetPluginInfoRequest) (*csi.GetPluginInfoResponse, error) {
	return &csi.GetPluginInfoResponse{Name: driverName, VendorVersion: version}, nil
}

func (s *server) GetPluginCapabilities(context.Context, *csi.GetPluginCapabilitiesRequest) (*csi.GetPluginCapabilitiesResponse, error) {
	service := func(t csi.PluginCapability_Service_Type) *csi.PluginCapability {
		return &csi.PluginCapability{Type: &csi.PluginCapability_Service_{Service: &csi.PluginCapability_Service{Type: t}}}
	}
	return &csi.GetPluginCapabilitiesResponse{Capabilities: []*csi.PluginCapability{
		service(csi.PluginCapability_Service_CONTROLLER_SERVICE),
		{Type: &csi.PluginCapability_VolumeExpansion_{VolumeExpansion: &csi.PluginCapability_VolumeExpansion{
			Type: csi.PluginCapability_VolumeExpansion_ONLINE,
		}}},
	}}, nil
}

func (s *server) Probe(context.Context, *csi.ProbeRequest) (*csi.ProbeResponse, error) {
	return &csi.ProbeResponse{Ready: wrapperspb.Bool(true)}, nil
}

func (s *server) ControllerGetCapabilities(context.Context, *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	// No EXPAND_VOLUME here: growing is done by the node that has the volume mounted
	// (the file, the loop device and the file system together), so the resizer only
	// records the new size and the kubelet calls NodeExpandVolume.
	for _, t := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{
			Rpc: &csi.ControllerServiceCapability_RPC{Type: t},
		}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func (s *server) CreateVolume(_ context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if err := validID(req.GetName()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, err
	}
	size := req.GetCapacityRange().GetRequiredBytes()
	if size == 0 {
		size = defaultSize
	}
	if limit := req.GetCapacityRange().GetLimitBytes(); limit > 0 && max(size, minSize) > limit {
		return nil, status.Errorf(codes.OutOfRange, "volumes are at least %d bytes, the limit is %d", minSize, limit)
	}
	var snapshot string
	if source := req.GetVolumeContentSource(); source != nil {
		snapshot = source.GetSnapshot().GetSnapshotId()
		if snapshot == "" {
			return nil, status.Error(codes.InvalidArgument, "only snapshots can be a volume's content source")
		}
		if err := validID(snapshot); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	created, err := s.store.createVolume(req.GetName(), size, snapshot)
	if errors.Is(err, os.ErrNotExist) {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateVolumeResponse{Volume: &csi.Volume{
		VolumeId:      req.GetName(),
		CapacityBytes: created,
		ContentSource: req.GetVolumeContentSource(),
	}}, nil
}

func (s *server) DeleteVolume(_ context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if err := validID(req.GetVolumeId()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.store.deleteVolume(req.GetVolumeId()); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (s *server) ValidateVolumeCapabilities(_ context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if _, err := s.store.volumeSize(req.GetVolumeId()); err != nil {
		return nil, status.Error(codes.NotFound, err.Error())
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeCapabilities: req.GetVolumeCapabilities(),
	}}, nil
}

func (s *server) CreateSnapshot(_ context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	for _, id := range []string{req.GetName(), req.GetSourceVolumeId()} {
		if err := validID(id); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	info, err := s.store.createSnapshot(req.GetName(), req.GetSourceVolumeId())
	var exists errAlreadyExists
	switch {
	case errors.As(err, &exists):
		return nil, status.Error(codes.AlreadyExists, err.Error())
	case errors.Is(err, os.ErrNotExist):
		return nil, status.Error(codes.NotFound, err.Error())
	case err != nil:
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.CreateSnapshotResponse{Snapshot: &csi.Snapshot{
		SnapshotId:     req.GetName(),
		SourceVolumeId: info.source,
		SizeBytes:      info.size,
		CreationTime:   timestamppb.New(timeFromNanos(info.created)),
		ReadyToUse:     true,
	}}, nil
}

func (s *server) DeleteSnapshot(_ context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if err := validID(req.GetSnapshotId()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := s.store.deleteSnapshot(req.GetSnapshotId()); err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

// checkCapabilities accepts file-system volumes mounted by one node (any number of pods
// on it): the loop device and XFS allow no more.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	if len(caps) == 0 {
		return status.Error(codes.InvalidArgument, "no volume capabilities")
	}
	for _, c := range caps {
		if c.GetMount() == nil {
			return status.Error(codes.InvalidArgument, "only file-system volumes (volumeMode: Filesystem) are offered")
		}
		if fs := c.GetMount().GetFsType(); fs != "" && fs != "xfs" {
			return status.Errorf(codes.InvalidArgument, "file system %q is not offered: volumes are XFS", fs)
		}
		switch c.GetAccessMode().GetMode() {
		case csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_READER_ONLY,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_SINGLE_WRITER,
			csi.VolumeCapability_AccessMode_SINGLE_NODE_MULTI_WRITER:
		default:
			return status.Errorf(codes.InvalidArgument, "access mode %v is not offered: a volume is mounted by one node at a time", c.GetAccessMode().GetMode())
		}
	}
	return nil
}
