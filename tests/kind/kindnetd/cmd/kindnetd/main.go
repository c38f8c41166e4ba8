// Command kindnetd is the pod network of the one-node kind cluster the tests make, run under the
// image name kind's default CNI manifest names (kindest/kindnetd), so that kind applies its
// manifest unchanged. kind's own kindnetd is not served by the Go module proxy at any commit, so
// this is the project's own, and does only what one node needs: it writes a CNI configuration
// (ptp links, host-local addresses from POD_SUBNET, masquerading of traffic that leaves the pod
// network, and port mappings) into /etc/cni/net.d, where containerd's CRI plugin looks, then
// waits to be stopped. Pods on other nodes are out of its reach: a cluster of several nodes
// needs kind's own image (with a registry) or another CNI.
package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
)

const confPath = "/etc/cni/net.d/10-kindnet.conflist"

// conflist is the CNI configuration for the pod subnet, as JSON.
func conflist(subnet *net.IPNet, mtu int) ([]byte, error) {
	conf := map[string]any{
		"cniVersion": "0.3.1",
		"name":       "kindnet",
		"plugins": []any{
			map[string]any{
				"type":   "ptp",
				"ipMasq": true,
				"mtu":    mtu,
				"ipam": map[string]any{
					"type":    "host-local",
					"dataDir": "/run/cni-ipam-state",
					"routes":  []any{map[string]any{"dst": "0.0.0.0/0"}},
					"ranges":  []any{[]any{map[string]any{"subnet": subnet.String()}}},
				},
			},
			map[string]any{"type": "portmap", "capabilities": map[string]any{"portMappings": true}},
		},
	}
	return json.MarshalIndent(conf, "", "  ")
}

// podSubnet is the first IPv4 network of POD_SUBNET (kind gives one, or an IPv4 and an IPv6 one).
func podSubnet(value string) (*net.IPNet, error) {
	for _, part := range strings.Split(value, ",") {
		_, network, err := net.ParseCIDR(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("POD_SUBNET %q: %w", value, err)
		}
		if network.IP.To4() != nil {
			return network, nil
		}
	}
	return nil, fmt.Errorf("POD_SUBNET %q has no IPv4 network", value)
}

// writeAtomically puts data at path in one rename, so containerd never reads half a file.
func writeAtomically(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".kindnet-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func main() {
	subnet, err := podSubnet(os.Getenv("POD_SUBNET"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kindnetd:", err)
		os.Exit(1)
	}
	data, err := conflist(subnet, 1500)
	if err == nil {
		err = writeAtomically(confPath, data)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "kindnetd: writing", confPath+":", err)
		os.Exit(1)
	}
	fmt.Printf("kindnetd: pods get addresses in %s (%s)\n", subnet, confPath)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
