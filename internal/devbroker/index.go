package devbroker

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"strings"
)

// kfake keeps each partition as segment files of raw record batches
// (<base>.dat) and, beside each, an index of one fixed-size entry per batch
// (<base>.idx) holding whether the batch was written inside a transaction.
// It writes the batch, then its entry. A kill between the two leaves a batch
// without an entry, which kfake's restart reads as not transactional: the
// records of a transaction the crash cut short become visible, and every
// entry written after the restart lands one batch off. repairIndexes writes
// the missing entries before kfake loads the files.

// indexFormat is the index entry version this repair writes and reads; an
// index of another version is left alone (see TestIndexRepairMatchesKfake).
const indexFormat = 1

// indexEntrySize is kfake's entry: version, checksum, leader epoch (LE
// uint32), max earlier timestamp (LE int64), flags (bit 0: in a transaction).
const indexEntrySize = 15

const (
	attrTransactional = 0x10
	attrControl       = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// repairIndexes completes the index of every segment under kafkaDir and
// returns how many entries it wrote.
func repairIndexes(kafkaDir string, sync bool) (int, error) {
	segs, err := filepath.Glob(filepath.Join(kafkaDir, "partitions", "*", "*.dat"))
	if err != nil {
		return 0, err
	}
	total := 0
	for _, seg := range segs {
		n, err := repairIndex(seg, sync)
		if err != nil {
			return total, fmt.Errorf("index of %s: %w", seg, err)
		}
		total += n
	}
	return total, nil
}

// repairIndex appends the entries a segment's index lacks.
func repairIndex(segPath string, sync bool) (int, error) {
	raw, err := os.ReadFile(segPath)
	if err != nil {
		return 0, err
	}
	entries := indexEntries(raw)
	idxPath := strings.TrimSuffix(segPath, ".dat") + ".idx"
	idx, err := os.ReadFile(idxPath)
	if err != nil && !os.IsNotExist(err) {
		return 0, err
	}
	have := len(idx) / indexEntrySize
	if have >= len(entries) {
		return 0, nil // complete; extra entries are kfake's to trim
	}
	for i := range have {
		if idx[i*indexEntrySize] != indexFormat {
			return 0, nil // a format this repair does not know: leave it
		}
	}
	f, err := os.OpenFile(idxPath, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	// A torn last entry is dropped and written again whole.
	if err := f.Truncate(int64(have * indexEntrySize)); err != nil {
		return 0, err
	}
	var buf []byte
	for _, e := range entries[have:] {
		buf = append(buf, e[:]...)
	}
	if _, err := f.WriteAt(buf, int64(have*indexEntrySize)); err != nil {
		return 0, err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return len(entries) - have, nil
}

// indexEntries computes the index entry of every whole, intact batch of a
// segment, stopping where kfake's load stops: at the first torn or corrupt
// batch.
func indexEntries(raw []byte) [][indexEntrySize]byte {
	var (
		out   [][indexEntrySize]byte
		maxTS int64
	)
	for pos := 0; pos+12 <= len(raw); {
		length := int(binary.BigEndian.Uint32(raw[pos+8 : pos+12]))
		end := pos + 12 + length
		// The batch header up to the records: attributes at 21, max
		// timestamp at 35, 61 bytes in all.
		if length < 49 || length > 1<<30 || end > len(raw) {
			break
		}
		b := raw[pos:end]
		if binary.BigEndian.Uint32(b[17:21]) != crc32.Checksum(b[21:], castagnoli) {
			break
		}
		epoch := binary.BigEndian.Uint32(b[12:16])
		attrs := binary.BigEndian.Uint16(b[21:23])
		if ts := int64(binary.BigEndian.Uint64(b[35:43])); ts > maxTS {
			maxTS = ts
		}
		var e [indexEntrySize]byte
		e[0] = indexFormat
		binary.LittleEndian.PutUint32(e[2:6], epoch)
		binary.LittleEndian.PutUint64(e[6:14], uint64(maxTS))
		// A data batch of a transaction is written in it; kfake never
		// clears the flag on disk, whatever the transaction's outcome.
		if attrs&attrTransactional != 0 && attrs&attrControl == 0 {
			e[14] = 1
		}
		e[1] = byte(crc32.Checksum(e[2:], castagnoli))
		out = append(out, e)
		pos = end
	}
	return out
}
