package report

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// findBrowser returns a headless-capable Chromium, or "" with the reason.
func findBrowser() (string, string) {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, ""
		}
	}
	return "", "no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)"
}

// TestHTMLInBrowser loads the --html page in a real headless Chromium with
// the network shut off, and checks that it drew its tables and plots,
// logged no errors, and painted a screenshot that is not blank.
func TestHTMLInBrowser(t *testing.T) {
	browser, why := findBrowser()
	if browser == "" {
		t.Skip(why)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	f, err := os.Create(page)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteHTML(f, sample()); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	flags := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-quic", "--user-data-dir=" + filepath.Join(dir, "profile"),
		// Any request leaving the machine fails: the page must need none.
		"--proxy-server=127.0.0.1:9", "--proxy-bypass-list=<-loopback>",
		"--enable-logging=stderr", "--v=0",
	}
	run := func(extra ...string) (string, string) {
		cmd := exec.CommandContext(ctx, browser, append(append(flags, extra...), "file://"+page)...)
		cmd.WaitDelay = 5 * time.Second
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("%s: %v\n%s", browser, err, errb.String())
		}
		return out.String(), errb.String()
	}
	dom, logs := run("--dump-dom")
	if n := strings.Count(dom, "<table"); n != 1 {
		t.Errorf("the browser's DOM has %d tables, want 1", n)
	}
	if n := strings.Count(dom, "<polyline"); n != 2 {
		t.Errorf("the browser's DOM has %d plotted lines, want 2", n)
	}
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "CONSOLE") || strings.Contains(l, "Uncaught") || strings.Contains(l, "ERR_") && strings.Contains(l, "file://") {
			t.Errorf("the page logged: %s", l)
		}
	}
	shot := filepath.Join(dir, "shot.png")
	run("--screenshot="+shot, "--window-size=1024,900")
	img, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer img.Close()
	m, err := png.Decode(img)
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	colors := map[uint32]bool{}
	b := m.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, _ := m.At(x, y).RGBA()
			colors[r>>12<<8|g>>12<<4|bl>>12] = true
		}
	}
	if len(colors) < 4 {
		t.Errorf("the screenshot has %d colours: the page drew nothing", len(colors))
	}
	t.Logf("screenshot %s: %dx%d, %d colours", shot, b.Dx(), b.Dy(), len(colors))
}
