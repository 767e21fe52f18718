// Command init is /init of the Linux guest that bench/net boots beside the
// nucleus, in the same QEMU configuration (q35, the same virtio-net NIC on
// QEMU's user network, the same forwards): it loads the virtio modules,
// brings eth0 up as 10.0.2.15/24 (the address QEMU's DHCP gives the
// nucleus), serves TCP echo on port 7 (read up to 4096 bytes, write them
// back, as the nucleus's tcp-echo does) and runs /http (go-wasip1/cmd/http
// built for linux/amd64) with a listener on port 8080 as its fd 3. When
// /http exits (GET /quit), it powers the machine off.
package main

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"time"
	"unsafe"
)

// The modules virtio_net needs, in dependency order (Debian builds them all
// as modules).
var modules = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
	"virtio_pci", "failover", "net_failover", "virtio_net",
}

func main() {
	for _, name := range modules {
		if err := loadModule("/modules/" + name + ".ko"); err != nil {
			fail("loading %s: %v", name, err)
		}
	}
	if err := waitFor("eth0", 10*time.Second); err != nil {
		fail("%v", err)
	}
	must(setAddress("eth0", [4]byte{10, 0, 2, 15}, [4]byte{255, 255, 255, 0}))
	must(setUp("eth0"))
	must(setUp("lo"))
	echo, err := net.Listen("tcp", ":7")
	must(err)
	go serveEcho(echo)
	listener, err := net.Listen("tcp", ":8080")
	must(err)
	file, err := listener.(*net.TCPListener).File()
	must(err)
	fmt.Println("linux-guest: ready: echo on 7, http on 8080")
	http := exec.Command("/http")
	http.ExtraFiles = []*os.File{file}
	// No /dev/null here: the child gets init's console for all three.
	http.Stdin, http.Stdout, http.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := http.Run(); err != nil {
		fmt.Printf("linux-guest: /http: %v\n", err)
	}
	fmt.Println("linux-guest: done")
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}

func serveEcho(listener net.Listener) {
	for {
		conn, err := listener.Accept()
		if err != nil {
			return
		}
		go func() {
			defer conn.Close()
			buffer := make([]byte, 4096)
			for {
				n, err := conn.Read(buffer)
				if n > 0 {
					if _, werr := conn.Write(buffer[:n]); werr != nil {
						return
					}
				}
				if err == io.EOF || err != nil {
					return
				}
			}
		}()
	}
}

// finit_module(2) on x86_64 (the syscall package has no name for it).
const sysFinitModule = 313

func loadModule(path string) error {
	file, err := os.Open(path)
	if err != nil {
		return err
	}
	defer file.Close()
	params := []byte{0}
	_, _, errno := syscall.Syscall(sysFinitModule, file.Fd(),
		uintptr(unsafe.Pointer(&params[0])), 0)
	if errno != 0 {
		return errno
	}
	return nil
}

func waitFor(name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := net.InterfaceByName(name); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no %s after %v", name, limit)
}

// ifreq as the SIOCSIF* ioctls take it: a name, then a sockaddr or flags.
type ifreq struct {
	name [16]byte
	data [24]byte
}

func request(name string) ifreq {
	var r ifreq
	copy(r.name[:], name)
	return r
}

func ioctl(r *ifreq, op uintptr) error {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
	if err != nil {
		return err
	}
	defer syscall.Close(fd)
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), op, uintptr(unsafe.Pointer(r))); errno != 0 {
		return errno
	}
	return nil
}

func sockaddr(r *ifreq, address [4]byte) {
	r.data[0] = syscall.AF_INET // sa_family, little-endian u16
	copy(r.data[4:8], address[:])
}

func setAddress(name string, address, mask [4]byte) error {
	r := request(name)
	sockaddr(&r, address)
	if err := ioctl(&r, syscall.SIOCSIFADDR); err != nil {
		return fmt.Errorf("SIOCSIFADDR: %v", err)
	}
	r = request(name)
	sockaddr(&r, mask)
	if err := ioctl(&r, syscall.SIOCSIFNETMASK); err != nil {
		return fmt.Errorf("SIOCSIFNETMASK: %v", err)
	}
	return nil
}

func setUp(name string) error {
	r := request(name)
	if err := ioctl(&r, syscall.SIOCGIFFLAGS); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS %s: %v", name, err)
	}
	flags := uint16(r.data[0]) | uint16(r.data[1])<<8
	flags |= syscall.IFF_UP | syscall.IFF_RUNNING
	r.data[0], r.data[1] = byte(flags), byte(flags>>8)
	if err := ioctl(&r, syscall.SIOCSIFFLAGS); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS %s: %v", name, err)
	}
	return nil
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Printf("linux-guest: "+format+"\n", args...)
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
