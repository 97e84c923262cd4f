package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Processes are looked at through /proc: CPU time, bytes written, the tree
// `trafficmanager dev` started, and CPU pinning with taskset.

// clockTick is USER_HZ, the unit of utime and stime in /proc/<pid>/stat
// (100 on every Linux architecture Go supports).
const clockTick = 100

// procStat is what the bench reads of one process.
type procStat struct {
	ppid  int
	comm  string
	cpu   time.Duration // utime + stime
	wrote int64         // write_bytes of /proc/<pid>/io, -1 when unreadable
}

func readProc(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	// comm is in parentheses and may hold spaces; the fields after it are
	// space-separated: state(3) ppid(4) … utime(14) stime(15).
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	f := strings.Fields(s[end+1:])
	if len(f) < 13 {
		return procStat{}, fmt.Errorf("/proc/%d/stat: unexpected format", pid)
	}
	ppid, _ := strconv.Atoi(f[1])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	ps := procStat{ppid: ppid, comm: s[open+1 : end], cpu: time.Duration(ut+st) * time.Second / clockTick, wrote: -1}
	if io, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid)); err == nil {
		for _, l := range strings.Split(string(io), "\n") {
			if v, ok := strings.CutPrefix(l, "write_bytes:"); ok {
				ps.wrote, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			}
		}
	}
	return ps, nil
}

// descendants returns root and every process below it.
func descendants(root int) []int {
	children := map[int][]int{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ps, err := readProc(pid); err == nil {
			children[ps.ppid] = append(children[ps.ppid], pid)
		}
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}

// childNamed returns the first process below root whose comm is name.
func childNamed(root int, name string) (int, error) {
	for _, pid := range descendants(root)[1:] {
		if ps, err := readProc(pid); err == nil && ps.comm == name {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no %q process below pid %d", name, root)
}

// usage is CPU time and bytes written by a set of processes between two
// samples.
type usage struct {
	cpu   time.Duration
	wrote int64 // -1: /proc/<pid>/io unreadable
	wall  time.Duration
}

// sampler snapshots processes; done returns what they used since.
type sampler struct {
	pids  []int
	start time.Time
	base  map[int]procStat
}

func sample(pids ...int) *sampler {
	s := &sampler{pids: pids, start: time.Now(), base: map[int]procStat{}}
	for _, pid := range pids {
		if ps, err := readProc(pid); err == nil {
			s.base[pid] = ps
		}
	}
	return s
}

func (s *sampler) done() usage {
	u := usage{wall: time.Since(s.start)}
	for _, pid := range s.pids {
		b, ok := s.base[pid]
		ps, err := readProc(pid)
		if !ok || err != nil {
			continue
		}
		u.cpu += ps.cpu - b.cpu
		if ps.wrote < 0 || b.wrote < 0 || u.wrote < 0 {
			u.wrote = -1
		} else {
			u.wrote += ps.wrote - b.wrote
		}
	}
	return u
}

// machineSampler measures the CPU time of the whole machine from /proc/stat.
type machineSampler struct {
	start time.Time
	busy  time.Duration
}

// machineBusy is the CPU time all CPUs spent not idle since boot.
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal …
	var busy int64
	for i := 1; i < len(f) && i <= 8; i++ {
		if i == 4 || i == 5 { // idle, iowait
			continue
		}
		v, _ := strconv.ParseInt(f[i], 10, 64)
		busy += v
	}
	return time.Duration(busy) * time.Second / clockTick
}

func sampleMachine() *machineSampler { return &machineSampler{start: time.Now(), busy: machineBusy()} }

func (m *machineSampler) done() usage {
	return usage{cpu: machineBusy() - m.busy, wall: time.Since(m.start)}
}

// cores is the average number of cores the processes kept busy.
func (u usage) cores() float64 {
	if u.wall <= 0 {
		return 0
	}
	return u.cpu.Seconds() / u.wall.Seconds()
}

// perOp formats CPU seconds per 1000 operations and bytes written per
// operation.
func (u usage) perOp(ops int) string {
	s := fmt.Sprintf("%.2f CPU-s/1000 ops", u.cpu.Seconds()*1000/float64(ops))
	if u.wrote >= 0 {
		s += fmt.Sprintf(", %.1f KiB written/op", float64(u.wrote)/1024/float64(ops))
	}
	return s
}

// pin sets the CPU affinity of every thread of the given processes
// (`taskset -a -p -c cpus pid`); a process that is gone is skipped.
func pin(cpus string, pids ...int) error {
	for _, pid := range pids {
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); err != nil {
			continue
		}
		if out, err := exec.Command("taskset", "-a", "-p", "-c", cpus, strconv.Itoa(pid)).CombinedOutput(); err != nil {
			if _, statErr := os.Stat(filepath.Join("/proc", strconv.Itoa(pid))); statErr != nil {
				continue // exited meanwhile
			}
			return fmt.Errorf("taskset -a -p -c %s %d: %v: %s", cpus, pid, err, strings.TrimSpace(string(out)))
		}
	}
	return nil
}

// allCPUs is the cpu list of every CPU of the machine, for unpinning.
func allCPUs() string { return fmt.Sprintf("0-%d", numCPU()-1) }

// Where the load generator and the server under test run when the resolve
// group pins them (only on machines with at least 2 CPUs).
const (
	generatorCPU = "0"
	serverCPU    = "1"
)

// needTools fails with one clear line per missing program the groups need.
func needTools(names ...string) error {
	var missing []string
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return fmt.Errorf("%s not found on PATH: run `go tool task setup` (it installs wrk with apt-get; taskset is in util-linux)", strings.Join(missing, ", "))
}
