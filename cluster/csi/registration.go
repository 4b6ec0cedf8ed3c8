package main

import (
	"context"
	"log"

	"google.golang.org/grpc"
	registration "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// registrar answers the kubelet's plugin watcher, which finds the registration socket
// in its plugins_registry directory and learns there where the CSI socket is (the work
// of node-driver-registrar, which the module proxy does not serve either).
type registrar struct {
	registration.UnimplementedRegistrationServer
	endpoint string
	// stop ends the process when the kubelet refuses the plugin, so the pod restarts.
	stop func()
}

func registerWithKubelet(g *grpc.Server, endpoint string, stop func()) {
	registration.RegisterRegistrationServer(g, &registrar{endpoint: endpoint, stop: stop})
}

func (r *registrar) GetInfo(context.Context, *registration.InfoRequest) (*registration.PluginInfo, error) {
	return &registration.PluginInfo{
		Type:              registration.CSIPlugin,
		Name:              driverName,
		Endpoint:          r.endpoint,
		SupportedVersions: []string{"1.0.0"},
	}, nil
}

func (r *registrar) NotifyRegistrationStatus(_ context.Context, status *registration.RegistrationStatus) (*registration.RegistrationStatusResponse, error) {
	if status.PluginRegistered {
		log.Printf("registered with the kubelet")
	} else {
		log.Printf("the kubelet refused the plugin: %s", status.Error)
		r.stop()
	}
	return &registration.RegistrationStatusResponse{}, nil
}
