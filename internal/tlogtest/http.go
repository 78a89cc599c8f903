package tlogtest

import (
	"fmt"
	"io"
	"net/http"

	"golang.org/x/mod/sumdb/tlog"
)

// maxTile bounds a tile or bundle read: 256 entries of 65,535 bytes.
const maxTile = 256 * (2 + 65535)

// TileReader is an x/mod tlog.TileReader fetching c2sp.org/tlog-tiles tiles
// over HTTP from the log at URL (a prefix, without a trailing slash), with
// paths built by TilePath. Client nil means http.DefaultClient. Wrapped in
// tlog.TileHashReader, it authenticates every tile against a tree.
type TileReader struct {
	URL    string
	Client *http.Client
}

// Height implements tlog.TileReader.
func (r TileReader) Height() int { return TileHeight }

// ReadTiles implements tlog.TileReader: one GET per tile, any status but 200
// is an error.
func (r TileReader) ReadTiles(tiles []tlog.Tile) ([][]byte, error) {
	c := r.Client
	if c == nil {
		c = http.DefaultClient
	}
	out := make([][]byte, len(tiles))
	for i, t := range tiles {
		p := TilePath(t)
		resp, err := c.Get(r.URL + "/" + p)
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxTile))
		resp.Body.Close()
		if err != nil {
			return nil, err
		}
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("GET %s: %d %s", p, resp.StatusCode, b)
		}
		out[i] = b
	}
	return out, nil
}

// SaveTiles implements tlog.TileReader; it keeps nothing.
func (r TileReader) SaveTiles([]tlog.Tile, [][]byte) {}
