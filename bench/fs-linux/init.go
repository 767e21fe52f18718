// Command init is /init of the Linux guest that bench/fs boots beside the
// nucleus, in the same QEMU configuration (q35, 2 CPUs, 512 MiB, the same
// virtio-blk disk, serial "data", modern only): it loads the virtio and
// ext4 modules, mounts the disk (an ext4 file system bench/fs made on a
// fresh image of the volume's size) at /data with default options, and
// makes the measurements guests/testers/src/bin/fsbench.rs makes on the
// nucleus, printing the same lines (`fsbench: NAME bytes=B ops=N ns=T`):
//
//   - seq-write: /data/big created, FILE_MIB MiB written in 60 KiB writes,
//     fsync;
//   - seq-read: read back in 60 KiB preads with O_DIRECT (every read goes
//     to the disk; the nucleus keeps only 1 MiB of blocks);
//     seq-read-buffered: the same through the page cache, dropped first
//     (so with Linux's readahead);
//   - rand-read: RANDOM_READS 4 KiB preads with O_DIRECT at 4 KiB-aligned
//     offsets (the same xorshift64 sequence as fsbench);
//     rand-read-buffered: the same through the page cache, dropped first;
//   - small-files: SMALL_FILES times small/fN.tmp created, 1 KiB written,
//     fsync, close, renamed to small/fN; small-files-dirsync: the same in
//     small2/ with the directory fsynced after each rename (which makes the
//     rename durable, as the nucleus's is when it returns).
//
// Arguments (after `--` on the kernel command line): FILE_MIB RANDOM_READS
// SMALL_FILES. Then it unmounts and powers the machine off.
package main

import (
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// What virtio_blk and ext4 need, in dependency order (Debian builds them
// all as modules). ext4 and jbd2 ask the crypto API for crc32c when they
// mount a file system with checksums: crc32c_generic provides it.
var modules = []string{
	"virtio_ring", "virtio", "virtio_pci_modern_dev", "virtio_pci_legacy_dev",
	"virtio_pci", "virtio_blk", "crc16", "crc32c_generic", "mbcache", "jbd2", "ext4",
}

const (
	chunk = 60 * 1024
	page  = 4096
	small = 1024
	seed  = 0x9e3779b97f4a7c15
)

func main() {
	numbers := []int64{16, 2000, 200}
	for i, arg := range os.Args[1:] {
		n, err := strconv.ParseInt(arg, 10, 64)
		if i >= len(numbers) || err != nil || n < 1 {
			fail("usage: init [FILE_MIB [RANDOM_READS [SMALL_FILES]]]: bad %q", arg)
		}
		numbers[i] = n
	}
	fileMiB, randomReads, smallFiles := numbers[0], numbers[1], numbers[2]
	for _, name := range modules {
		if err := loadModule("/modules/" + name + ".ko"); err != nil {
			fail("loading %s: %v", name, err)
		}
	}
	must(os.MkdirAll("/proc", 0o755))
	must(syscall.Mount("proc", "/proc", "proc", 0, ""))
	must(syscall.Mount("devtmpfs", "/dev", "devtmpfs", 0, ""))
	if err := waitFor("/dev/vda", 10*time.Second); err != nil {
		fail("%v", err)
	}
	must(os.MkdirAll("/data", 0o755))
	if err := syscall.Mount("/dev/vda", "/data", "ext4", 0, ""); err != nil {
		fail("mounting /dev/vda: %v", err)
	}
	fmt.Printf("fsbench: ext4 on /data: %d MiB file, %d random reads, %d small files\n",
		fileMiB, randomReads, smallFiles)
	run(fileMiB<<20, randomReads, smallFiles)
	fmt.Println("fsbench: done")
	must(syscall.Unmount("/data", 0))
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}

// pageByte is the byte every position of the page at offset holds.
func pageByte(offset int64) byte {
	return byte(uint64(offset/page)*31 + 7)
}

func report(name string, bytes, ops int64, elapsed time.Duration) {
	fmt.Printf("fsbench: %s bytes=%d ops=%d ns=%d\n", name, bytes, ops, elapsed.Nanoseconds())
}

func run(size, randomReads, smallFiles int64) {
	// Sequential write, then fsync.
	data := make([]byte, chunk)
	start := time.Now()
	big, err := os.OpenFile("/data/big", os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	must(err)
	var offset, ops int64
	for offset < size {
		length := min(size-offset, chunk)
		fill(data[:length], offset)
		_, err := big.Write(data[:length])
		must(err)
		offset += length
		ops++
	}
	must(big.Sync())
	must(big.Close())
	report("seq-write", size, ops, time.Since(start))

	// Sequential read, O_DIRECT into page-aligned memory.
	buffer, err := syscall.Mmap(-1, 0, 64*1024, syscall.PROT_READ|syscall.PROT_WRITE,
		syscall.MAP_PRIVATE|syscall.MAP_ANON)
	must(err)
	start = time.Now()
	fd, err := syscall.Open("/data/big", syscall.O_RDONLY|syscall.O_DIRECT, 0)
	must(err)
	offset, ops = 0, 0
	for {
		n, err := syscall.Pread(fd, buffer[:chunk], offset)
		must(err)
		if n == 0 {
			break
		}
		check(offset, buffer[:n])
		offset += int64(n)
		ops++
	}
	report("seq-read", offset, ops, time.Since(start))
	if offset != size {
		fail("read %d bytes of big, wrote %d", offset, size)
	}

	// Random 4 KiB reads, O_DIRECT.
	pages := uint64(size / page)
	state := uint64(seed)
	start = time.Now()
	for range randomReads {
		offset := int64(xorshift(&state) % pages * page)
		n, err := syscall.Pread(fd, buffer[:page], offset)
		must(err)
		if n != page {
			fail("a 4 KiB read at %d gave %d bytes", offset, n)
		}
		check(offset, buffer[:n])
	}
	report("rand-read", randomReads*page, randomReads, time.Since(start))
	must(syscall.Close(fd))

	// Sequential read through the page cache, emptied first.
	syscall.Sync()
	must(os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0))
	start = time.Now()
	big, err = os.Open("/data/big")
	must(err)
	offset, ops = 0, 0
	for {
		n, err := big.ReadAt(data, offset)
		if n == 0 {
			break
		}
		if err != nil && n < len(data) && offset+int64(n) < size {
			must(err)
		}
		check(offset, data[:n])
		offset += int64(n)
		ops++
	}
	must(big.Close())
	report("seq-read-buffered", offset, ops, time.Since(start))

	// Random 4 KiB reads through the page cache, emptied first.
	must(os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0))
	state = seed
	start = time.Now()
	big, err = os.Open("/data/big")
	must(err)
	for range randomReads {
		offset := int64(xorshift(&state) % pages * page)
		n, err := big.ReadAt(data[:page], offset)
		must(err)
		check(offset, data[:n])
	}
	must(big.Close())
	report("rand-read-buffered", randomReads*page, randomReads, time.Since(start))

	// Small files, rename-updated; then again with the directory fsynced.
	content := make([]byte, small)
	for i := range content {
		content[i] = 0x5a
	}
	for _, dirsync := range []bool{false, true} {
		dir, name := "/data/small", "small-files"
		if dirsync {
			dir, name = "/data/small2", "small-files-dirsync"
		}
		must(os.Mkdir(dir, 0o755))
		directory, err := os.Open(dir)
		must(err)
		start = time.Now()
		for i := range smallFiles {
			temporary := fmt.Sprintf("%s/f%d.tmp", dir, i)
			f, err := os.OpenFile(temporary, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
			must(err)
			_, err = f.Write(content)
			must(err)
			must(f.Sync())
			must(f.Close())
			must(os.Rename(temporary, fmt.Sprintf("%s/f%d", dir, i)))
			if dirsync {
				must(directory.Sync())
			}
		}
		report(name, smallFiles*small, smallFiles, time.Since(start))
		must(directory.Close())
	}
}

// fill makes data the bytes of big from offset.
func fill(data []byte, offset int64) {
	for i := range data {
		data[i] = pageByte(offset + int64(i))
	}
}

// check fails unless data, read at offset, holds what was written there:
// the first and last byte of each page it touches, as fsbench checks.
func check(offset int64, data []byte) {
	end := offset + int64(len(data))
	for at := offset; at < end; {
		last := min((at/page+1)*page, end) - 1
		for _, probe := range []int64{at, last} {
			if got := data[probe-offset]; got != pageByte(probe) {
				fail("byte %d of big is %#x, was written %#x", probe, got, pageByte(probe))
			}
		}
		at = last + 1
	}
}

// xorshift is xorshift64 (Marsaglia), the sequence fsbench draws.
func xorshift(state *uint64) uint64 {
	*state ^= *state << 13
	*state ^= *state >> 7
	*state ^= *state << 17
	return *state
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

func waitFor(path string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("no %s after %v", path, limit)
}

func must(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Printf("fsbench: failed: "+format+"\n", args...)
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
}
