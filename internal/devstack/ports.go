package devstack

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
)

// PortsFileName is the file in a dev data dir that keeps the ports its
// dependencies listened on.
const PortsFileName = "ports.json"

// Ports keeps the loopback port of each dependency of a data dir across
// restarts, so a shell that sourced dev.env before a restart still reaches
// the same stack. Port reuses the saved port when it is free and picks (and
// saves) a new one otherwise.
type Ports struct {
	mu    sync.Mutex
	path  string
	ports map[string]int
}

// OpenPorts reads dir's ports file; a missing file is an empty one.
func OpenPorts(dir string) (*Ports, error) {
	p := &Ports{path: filepath.Join(dir, PortsFileName), ports: map[string]int{}}
	b, err := os.ReadFile(p.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return p, nil
	case err != nil:
		return nil, err
	}
	if err := json.Unmarshal(b, &p.ports); err != nil {
		// A damaged file costs the old ports, not the start.
		p.ports = map[string]int{}
	}
	return p, nil
}

// Port returns the port of dependency name: the saved one when it can be
// bound, else a new free one, which is saved. moved is the saved port that
// was taken (0 when there was none or it was reused), for a message telling
// the user to source dev.env again.
func (p *Ports) Port(name string) (port, moved int, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.ports[name]; old > 0 {
		if portFree(old) {
			return old, 0, nil
		}
		moved = old
	}
	port, err = FreePort()
	if err != nil {
		return 0, 0, err
	}
	p.ports[name] = port
	if err := p.save(); err != nil {
		return 0, 0, err
	}
	return port, moved, nil
}

func (p *Ports) save() error {
	b, err := json.MarshalIndent(p.ports, "", "  ") // map keys come out sorted
	if err != nil {
		return err
	}
	if err := os.WriteFile(p.path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("save the dependency ports: %w", err)
	}
	return nil
}
