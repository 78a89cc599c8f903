package loadgen

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"time"
)

// rawConn is a minimal HTTP/1.1 keep-alive client connection: it writes
// each request with one syscall and parses just enough of the reply (a
// status line, Content-Length, Connection: close). Anything else (chunked
// bodies, oversized replies) is an error, never misread. On a 2-core
// machine the load generator's own CPU decides how much is left for the
// server: net/http's client costs several times more per request.
type rawConn struct {
	u    *url.URL
	conn net.Conn // nil after the server closed it: the next request redials
	br   *bufio.Reader
	body []byte
}

func (p *rawConn) dial() error {
	conn, err := net.DialTimeout("tcp", p.u.Host, RequestTimeout)
	if err != nil {
		return err
	}
	p.conn = conn
	p.br = bufio.NewReaderSize(conn, 4096)
	return nil
}

func (p *rawConn) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn = nil
	}
}

// roundTrip writes req (a whole request) and reads the reply. The body is
// valid until the next call.
func (p *rawConn) roundTrip(req []byte) (status int, body []byte, err error) {
	if p.conn == nil {
		if err := p.dial(); err != nil {
			return 0, nil, err
		}
	}
	p.conn.SetDeadline(time.Now().Add(RequestTimeout))
	if _, err := p.conn.Write(req); err != nil {
		p.close()
		return 0, nil, err
	}
	status, body, err = p.readReply()
	if err != nil {
		p.close()
		return 0, nil, err
	}
	return status, body, nil
}

// rawPoster POSTs entries to /add over a rawConn.
type rawPoster struct {
	rawConn
	head []byte // request line and headers up to "Content-Length: "
	req  []byte
}

func dialRaw(u *url.URL) (*rawPoster, error) {
	head := fmt.Appendf(nil, "POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: indelible-bench\r\nContent-Type: application/octet-stream\r\nContent-Length: ",
		u.RequestURI(), u.Host)
	p := &rawPoster{rawConn: rawConn{u: u}, head: head}
	if err := p.dial(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *rawPoster) post(entry []byte) (int64, int, error) {
	req := append(p.req[:0], p.head...)
	req = strconv.AppendInt(req, int64(len(entry)), 10)
	req = append(req, "\r\n\r\n"...)
	req = append(req, entry...)
	p.req = req
	status, body, err := p.roundTrip(req)
	if err != nil {
		return 0, 0, err
	}
	return parseAddReply(status, body)
}

// readReply reads one response with a Content-Length body.
func (p *rawConn) readReply() (int, []byte, error) {
	line, err := p.br.ReadSlice('\n')
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.1 200 OK\r\n"
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil || status < 100 {
		return 0, nil, fmt.Errorf("malformed status line %q", line)
	}
	length, closing := -1, false
	for {
		line, err := p.br.ReadSlice('\n')
		if err != nil {
			return 0, nil, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			break
		}
		name, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			length, err = strconv.Atoi(string(value))
			if err != nil || length < 0 || length > maxReply {
				return 0, nil, fmt.Errorf("unsupported Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			closing = bytes.EqualFold(value, []byte("close"))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return 0, nil, fmt.Errorf("unsupported Transfer-Encoding %q", value)
		}
	}
	if length < 0 {
		return 0, nil, errors.New("reply without Content-Length")
	}
	if cap(p.body) < length {
		p.body = make([]byte, length)
	}
	body := p.body[:length]
	if _, err := io.ReadFull(p.br, body); err != nil {
		return 0, nil, err
	}
	if closing {
		// The server closes the connection: the next post redials.
		p.close()
	}
	return status, body, nil
}
