package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/logbook-dev/logbook/schemas"
)

// runAuditExport fetches a workspace's export over HTTP to stdout or a file.
// It fails, leaving no file, unless the export arrives whole (ends with its
// chain head); it does not verify the chain: `audit verify --file` does.
func runAuditExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("audit export", stderr)
	ws := fs.String("workspace", "", "the workspace to export (required)")
	out := fs.String("out", "", "write the export to this file (mode 0600) instead of stdout")
	base, key := apiFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *ws == "" {
		return errors.New("--workspace is required")
	}
	cl, err := newAPIClient(*base, *key, 30*time.Second)
	if err != nil {
		return err
	}
	resp, err := cl.do(ctx, http.MethodGet, "/v1/workspaces/"+url.PathEscape(*ws)+"/events/export", nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var head schemas.ExportHead
	if *out == "" {
		head, err = copyExport(stdout, resp.Body)
	} else {
		err = writeFileAtomic(*out, func(w io.Writer) error {
			head, err = copyExport(w, resp.Body)
			return err
		})
	}
	if err != nil {
		return err
	}
	where := *out
	if where == "" {
		where = "stdout"
	}
	fmt.Fprintf(stderr, "exported %d events of workspace %s to %s: chain head seq %d, hash %s\n",
		head.Events, head.WorkspaceID, where, head.Seq, head.Hash)
	return nil
}

// copyExport copies an export line by line and returns its chain head; an
// export that ends without one is incomplete.
func copyExport(w io.Writer, r io.Reader) (schemas.ExportHead, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), schemas.MaxExportLine)
	bw := bufio.NewWriterSize(w, 64<<10)
	var last []byte
	for sc.Scan() {
		last = append(last[:0], sc.Bytes()...) // the scanner reuses its buffer
		if _, err := bw.Write(append(last, '\n')); err != nil {
			return schemas.ExportHead{}, err
		}
	}
	if err := sc.Err(); err != nil {
		_ = bw.Flush()
		return schemas.ExportHead{}, fmt.Errorf("export interrupted: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return schemas.ExportHead{}, err
	}
	head, ok := schemas.ExportHeadOf(last)
	if !ok {
		return schemas.ExportHead{}, errors.New("the export ended without its chain head: it is incomplete")
	}
	return head, nil
}

// writeFileAtomic writes path through a temporary file in its directory,
// renamed over it only once write succeeded: path is never left half
// written. The file is readable by its owner only.
func writeFileAtomic(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(0o600); err != nil {
		return err
	}
	if err = write(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// verifyExportFile is `audit verify --file`: exit 0 when the export is
// whole and its chain intact, 1 on a break or truncation, 2 when the file
// cannot be read or is of a newer format.
func verifyExportFile(path string, stdout, stderr io.Writer) int {
	f, err := os.Open(path)
	if err != nil {
		fmt.Fprintf(stderr, "logbook: audit verify: %v\n", err)
		return 2
	}
	defer f.Close()
	rep, err := schemas.VerifyExport(f)
	var b *schemas.ExportBreak
	switch {
	case errors.As(err, &b):
		fmt.Fprintf(stdout, "BROKEN %s\n", b)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "logbook: audit verify: %s: %v\n", path, err)
		return 2
	}
	fmt.Fprintf(stdout, "verified export of workspace %s: %d events, chain head seq %d, hash %s\n",
		rep.WorkspaceID, rep.Events, rep.Head.Seq, rep.Head.Hash)
	return 0
}
