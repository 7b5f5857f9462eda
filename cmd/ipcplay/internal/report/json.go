package report

import (
	"bytes"
	"encoding/json"
	"io"
)

// MarshalJSON writes the table with its rows as objects keyed by column.
func (t *Table) MarshalJSON() ([]byte, error) {
	type column struct {
		Key  string `json:"key"`
		Head string `json:"head"`
		Unit Unit   `json:"unit"`
	}
	doc := struct {
		Name    string           `json:"name"`
		Title   string           `json:"title"`
		Columns []column         `json:"columns"`
		Rows    []map[string]any `json:"rows"`
		Notes   []string         `json:"notes"`
	}{Name: t.Name, Title: t.Title, Columns: []column{}, Rows: []map[string]any{}, Notes: t.Notes}
	if doc.Notes == nil {
		doc.Notes = []string{}
	}
	for _, c := range t.Columns {
		doc.Columns = append(doc.Columns, column{c.Key, c.Head, c.Unit})
	}
	for _, row := range t.Rows {
		m := make(map[string]any, len(row))
		for j, v := range row {
			m[t.Columns[j].Key] = jsonValue(t.Columns[j].Unit, v)
		}
		doc.Rows = append(doc.Rows, m)
	}
	return json.Marshal(doc)
}

// WriteJSON writes r as one indented JSON document.
func WriteJSON(w io.Writer, r *Report) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return err
	}
	_, err := w.Write(buf.Bytes())
	return err
}
