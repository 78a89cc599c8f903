// Package recordfmt prints event records for indelible query and tail: an
// aligned table or NDJSON.
package recordfmt

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"indelible.dev/client"
)

// Printer prints records as an aligned table or as NDJSON.
type Printer struct {
	json   bool
	w      io.Writer
	tw     *tabwriter.Writer
	header bool
}

// NewPrinter returns a Printer writing to w, NDJSON if asJSON.
func NewPrinter(w io.Writer, asJSON bool) *Printer {
	return &Printer{json: asJSON, w: w, tw: tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
}

// Print prints r.
func (p *Printer) Print(r client.Record) error {
	if p.json {
		b, err := json.Marshal(r)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(p.w, "%s\n", b)
		return err
	}
	if !p.header {
		fmt.Fprintln(p.tw, "TIME\tINDEX\tACTOR\tSUBMITTED_BY\tACTION\tRESOURCE\tOUTCOME")
		p.header = true
	}
	e, err := r.Decode()
	if err != nil {
		return err
	}
	// The actor is what the writer claims; submitted_by is the token that
	// wrote the event, set by the server: shown side by side.
	actor, submittedBy, resource := "-", "-", "-"
	if e.Actor != nil && e.Actor.ID != "" {
		actor = e.Actor.ID
	}
	if e.SubmittedBy != "" {
		submittedBy = e.SubmittedBy
	}
	if e.Resource != nil && e.Resource.ID != "" {
		resource = e.Resource.ID
	}
	outcome := e.Outcome
	if outcome == "" {
		outcome = "-"
	}
	_, err = fmt.Fprintf(p.tw, "%s\t%d\t%s\t%s\t%s\t%s\t%s\n", e.Time, r.Index, actor, submittedBy, e.Action, resource, outcome)
	return err
}

// Flush writes out the table.
// Flush writes out the table.
func (p *Printer) Flush() error { return p.tw.Flush() }

// FlushAll flushes p, then out.
// FlushAll flushes p, then out.
func FlushAll(p *Printer, out *bufio.Writer) error {
	if err := p.Flush(); err != nil {
		return err
	}
	return out.Flush()
}
