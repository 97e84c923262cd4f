package resolver

import (
	"strconv"
	"syscall"
	"time"
	"unsafe"
)

// A live stream costs what its connection costs. Served the usual way, an
// SSE stream on net/http holds two goroutines (the handler's and the
// server's background read) with their stacks, the connection's 4 KiB read
// and 4 KiB write buffers, the response's 2 KiB chunking buffer and a timer:
// about 29 KiB, twenty times what etcd spends on a watcher. So once a
// HTTP/1.1 stream has sent its headers it takes the connection over
// (http.ResponseController.Hijack) and its handler returns: a live stream is
// then a watcher, its socket and two small frame queues, about 1 KiB, and
// no goroutine. The tenant's tail queues each change's frame, encoded once
// and shared by every stream, and a few writer goroutines per instance
// (GOMAXPROCS) write the queued frames of each stream with one writev. One
// heartbeat goroutine per instance queues the pings and probes the sockets
// for clients that went away (nothing reads a taken-over connection, so a
// closed one is found by a non-blocking peek). Streams that cannot be taken
// over (HTTP/2, a ResponseWriter without Hijack) keep their handler
// goroutine, which writes its queue itself.

// A taken-over stream whose socket buffer is full is retried after
// stallRetry until WriteTimeout has passed without progress.
const (
	stallRetry = 50 * time.Millisecond
	probeEvery = time.Second
)

var (
	chunkedPing = chunked(ping)
	chunkEnd    = []byte("0\r\n\r\n")
)

// chunked frames b as one chunk of HTTP/1.1's chunked transfer coding, which
// the stream's headers announced before it was taken over.
func chunked(b []byte) []byte {
	out := strconv.AppendInt(make([]byte, 0, len(b)+12), int64(len(b)), 16)
	out = append(out, "\r\n"...)
	out = append(out, b...)
	return append(out, "\r\n"...)
}

// closeFrame is the final `event: close` of reason.
func closeFrame(reason string) []byte {
	b := make([]byte, 0, len(closePrefix)+len(reason)+len(closeSuffix))
	return append(append(append(b, closePrefix...), reason...), closeSuffix...)
}

// enqueue queues frame f (plain) or fc (chunked, for a taken-over stream)
// for w and reports false when w's queue is full. The caller holds t.mu.
func (w *watcher) enqueue(h *watchHub, f, fc *[]byte) bool {
	w.mu.Lock()
	if w.closing {
		w.mu.Unlock()
		return true
	}
	if len(w.next)+len(w.q) >= h.o.Buffer {
		w.mu.Unlock()
		return false
	}
	if w.conn != nil {
		w.next = append(w.next, *fc)
	} else {
		w.next = append(w.next, *f)
	}
	w.wakeLocked(h)
	w.mu.Unlock()
	return true
}

// wakeLocked hands w to a writer (or signals its handler); w.mu is held.
func (w *watcher) wakeLocked(h *watchHub) {
	if w.conn == nil {
		select {
		case w.signal <- struct{}{}:
		default:
		}
		return
	}
	if !w.scheduled {
		w.scheduled = true
		h.ready <- w // capacity MaxWatchers: each stream is in it at most once
	}
}

// closeLocked ends w after what is queued, with `event: close` of reason;
// w.mu is held.
func (w *watcher) closeLocked(h *watchHub, reason string) {
	if w.closing {
		return
	}
	w.closing, w.reason = true, reason
	if w.conn != nil {
		w.next = append(w.next, chunked(closeFrame(reason)), chunkEnd)
	}
	w.wakeLocked(h)
}

// writer writes the queues of the taken-over streams handed to it.
func (h *watchHub) writer() {
	wv := &writev{}
	wv.call = wv.do // one closure per writer, not one per write
	for w := range h.ready {
		h.flushConn(w, wv)
	}
}

// writev writes a stream's queued frames with one writev(2) that does not
// wait: the socket takes what fits in its buffer, and a client that is not
// reading leaves the rest queued instead of holding the writer (no write
// deadline, so no timer per write either).
type writev struct {
	bufs [][]byte
	iov  []syscall.Iovec
	n    int
	err  syscall.Errno
	call func(fd uintptr) bool
}

func (v *writev) do(fd uintptr) bool {
	v.iov = v.iov[:0]
	for _, b := range v.bufs {
		if len(v.iov) == 1024 { // IOV_MAX
			break
		}
		if len(b) > 0 {
			v.iov = append(v.iov, syscall.Iovec{Base: &b[0]})
			v.iov[len(v.iov)-1].SetLen(len(b))
		}
	}
	v.n, v.err = 0, 0
	if len(v.iov) == 0 {
		return true
	}
	for {
		r, _, e := syscall.Syscall(syscall.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&v.iov[0])), uintptr(len(v.iov)))
		if e == syscall.EINTR {
			continue
		}
		if e == 0 {
			v.n = int(r)
		}
		v.err = e
		return true
	}
}

// flushConn writes w's queue to its connection until it is empty, the
// socket is full (retried after stallRetry), or the stream ends.
func (h *watchHub) flushConn(w *watcher, wv *writev) {
	for {
		w.mu.Lock()
		if w.done {
			w.mu.Unlock()
			return
		}
		if len(w.q) == 0 {
			w.q, w.next = w.next, w.q[:0]
		}
		if len(w.q) == 0 {
			w.scheduled = false
			closing := w.closing
			w.mu.Unlock()
			if closing {
				h.finish(w)
			}
			return
		}
		wv.bufs = w.q
		w.mu.Unlock()

		err := w.raw.Write(wv.call)
		wv.bufs = nil
		now := time.Now()
		w.mu.Lock()
		if w.done {
			w.mu.Unlock()
			return
		}
		if err != nil || wv.err != 0 && wv.err != syscall.EAGAIN {
			w.mu.Unlock()
			h.finish(w)
			return
		}
		w.q = consume(w.q, wv.n)
		if len(w.q) == 0 {
			w.stalled = time.Time{}
			w.mu.Unlock()
			continue
		}
		// The socket is full: the client is not keeping up.
		if wv.n > 0 || w.stalled.IsZero() {
			w.stalled = now
		}
		if w.closing || now.Sub(w.stalled) >= h.o.WriteTimeout {
			w.mu.Unlock()
			h.finish(w)
			return
		}
		w.mu.Unlock()
		time.AfterFunc(stallRetry, func() { h.ready <- w }) // still scheduled
		return
	}
}

// consume drops the first n bytes of q, keeping its array when all of it
// was written.
func consume(q [][]byte, n int) [][]byte {
	i := 0
	for ; i < len(q) && n >= len(q[i]); i++ {
		n -= len(q[i])
	}
	if i == len(q) {
		clear(q)
		return q[:0]
	}
	clear(q[:i])
	q = q[i:]
	q[0] = q[0][n:]
	return q
}

// finish closes a taken-over stream's connection and releases its place.
func (h *watchHub) finish(w *watcher) {
	w.mu.Lock()
	if w.done {
		w.mu.Unlock()
		return
	}
	w.done, w.closing = true, true
	w.q, w.next = nil, nil
	w.mu.Unlock()
	_ = w.conn.Close()
	h.leave(w.tail, w)
}

// beat queues a ping for every stream with nothing queued, every
// Heartbeat, and probes the taken-over sockets every probeEvery.
func (h *watchHub) beat() {
	hb := time.NewTicker(h.o.Heartbeat)
	defer hb.Stop()
	probe := time.NewTicker(min(probeEvery, h.o.Heartbeat))
	defer probe.Stop()
	pr := newProber()
	var ws []*watcher
	for {
		pinging := false
		select {
		case <-h.done:
			return
		case <-hb.C:
			pinging = true
		case <-probe.C:
		}
		ws = h.streams(ws[:0])
		for _, w := range ws {
			if pinging {
				w.mu.Lock()
				if !w.closing && len(w.q)+len(w.next) == 0 {
					if w.conn != nil {
						w.next = append(w.next, chunkedPing)
					} else {
						w.next = append(w.next, ping)
					}
					w.wakeLocked(h)
				}
				w.mu.Unlock()
			} else if w.raw != nil && pr.gone(w.raw) {
				h.finish(w)
			}
		}
		clear(ws)
	}
}

// streams appends every live stream to ws.
func (h *watchHub) streams(ws []*watcher) []*watcher {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, t := range h.tenants {
		t.mu.Lock()
		for w := range t.watchers {
			ws = append(ws, w)
		}
		t.mu.Unlock()
	}
	return ws
}

// prober finds the taken-over sockets whose client closed (or reset) the
// connection: a non-blocking peek that finds the end of the stream or an
// error. A client sends nothing on a watch stream, so bytes waiting count
// as alive.
type prober struct {
	dead bool
	call func(fd uintptr) bool
}

func newProber() *prober {
	p := &prober{}
	p.call = p.peek
	return p
}

func (p *prober) peek(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	p.dead = n == 0 && err == nil || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
	return true
}

func (p *prober) gone(rc syscall.RawConn) bool {
	p.dead = false
	err := rc.Read(p.call)
	return p.dead || err != nil
}
