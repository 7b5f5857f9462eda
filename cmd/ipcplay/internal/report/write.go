package report

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/procs/sysinfo"
)

// Write renders r where out says: JSON or text on env's stdout, and the
// SVG files and HTML page when asked for. It fails when a table got a
// malformed row.
func Write(env *base.Env, out *base.Output, r *Report) error {
	if err := checkTables(r); err != nil {
		return err
	}
	if r.ElapsedNS == 0 {
		r.ElapsedNS = int64(time.Since(r.Started))
	}
	if r.System == nil {
		r.System = &System{System: sysinfo.Read()}
		if env.Run != nil {
			if st, err := env.Run.Stop(); err == nil {
				r.System.Run = &st
				if bad, why := st.Disturbed(); bad {
					r.Warnf("%s: treat the figures as rough, or run again on a quieter machine", why)
				}
			}
		}
	}
	if r.SystemLine == "" {
		r.SystemLine = r.System.Summary()
	}
	var err error
	if out.JSON {
		err = WriteJSON(env.Stdout, r)
	} else {
		err = WriteText(env.Stdout, r, env.Width, out.Wide)
	}
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if out.SVG != "" {
		if err := WriteSVGs(out.SVG, r); err != nil {
			return err
		}
	}
	if out.HTML != "" {
		if err := writeHTMLFile(out.HTML, r); err != nil {
			return err
		}
	}
	return nil
}

// WriteSVGs writes one SVG file per plot of r into dir, creating it.
func WriteSVGs(dir string, r *Report) error {
	if len(r.Plots) == 0 {
		return fmt.Errorf("--svg %s: this lab draws no plots", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("svg: %w", err)
	}
	for _, p := range r.Plots {
		name := filepath.Join(dir, p.Name+".svg")
		f, err := os.Create(name)
		if err != nil {
			return fmt.Errorf("svg: %w", err)
		}
		err = WriteSVG(f, p)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("svg %s: %w", name, err)
		}
	}
	return nil
}

func writeHTMLFile(name string, r *Report) error {
	f, err := os.Create(name)
	if err != nil {
		return fmt.Errorf("html: %w", err)
	}
	err = WriteHTML(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return errors.Join(fmt.Errorf("html %s: %w", name, err), os.Remove(name))
	}
	return nil
}

// checkTables returns the first malformed row of r's tables.
func checkTables(r *Report) error {
	for _, t := range r.Tables {
		if t.err != nil {
			return t.err
		}
	}
	return nil
}
