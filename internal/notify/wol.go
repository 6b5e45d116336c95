package notify

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"syscall"
)

// DefaultWakeAddress is where a magic packet goes when a host's
// configuration names no address: the limited broadcast, port 9 (discard).
const DefaultWakeAddress = "255.255.255.255:9"

// MagicPacket returns the Wake-on-LAN magic packet for a 6-byte MAC: six
// 0xFF bytes, then the MAC sixteen times.
func MagicPacket(mac net.HardwareAddr) ([]byte, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("magic packet: MAC %s is not 6 bytes", mac)
	}
	p := bytes.Repeat([]byte{0xff}, 6)
	for range 16 {
		p = append(p, mac...)
	}
	return p, nil
}

// Wake sends the magic packet for mac over UDP to addr ("host:port"; a
// broadcast address is allowed).
func Wake(ctx context.Context, mac net.HardwareAddr, addr string) error {
	pkt, err := MagicPacket(mac)
	if err != nil {
		return err
	}
	to, err := net.ResolveUDPAddr("udp4", addr)
	if err != nil {
		return fmt.Errorf("wake %s: %w", mac, err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1)
		}); err != nil {
			return err
		}
		return serr
	}}
	conn, err := lc.ListenPacket(ctx, "udp4", ":0")
	if err != nil {
		return fmt.Errorf("wake %s: %w", mac, err)
	}
	defer conn.Close()
	if _, err := conn.WriteTo(pkt, to); err != nil {
		return fmt.Errorf("wake %s via %s: %w", mac, addr, err)
	}
	return nil
}
