// Command imagetool writes a single-layer OCI image without a container engine, as an OCI
// image layout directory and as a docker-archive tarball (one file that is both a `docker
// save` archive and an OCI layout), and checks such a layout. hack/image drives it.
//
// Everything it writes is a function of its inputs: tar entries sorted by path, every mtime
// the given epoch, owners and modes as the layer spec says, no user or group names, JSON with
// fixed field order, layers left uncompressed so the digest does not depend on a compressor.
//
//	imagetool build -spec LAYER.spec -epoch N -tag REPO:TAG -layout DIR -archive FILE \
//	    -entrypoint JSON -user UID:GID [-env K=V]... [-label K=V]... [-volume PATH]...
//	imagetool verify -layout DIR [-entrypoint JSON] [-user UID:GID]
//
// A layer spec has one entry a line, fields separated by spaces:
//
//	dir     PATH MODE UID GID
//	file    PATH MODE UID GID SOURCE
//	symlink PATH TARGET
//
// Parent directories not listed are added as root-owned 0755 directories.
package main

import (
	"archive/tar"
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	mediaIndex    = "application/vnd.oci.image.index.v1+json"
	mediaManifest = "application/vnd.oci.image.manifest.v1+json"
	mediaConfig   = "application/vnd.oci.image.config.v1+json"
	mediaLayer    = "application/vnd.oci.image.layer.v1.tar"
)

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []descriptor `json:"manifests"`
}

type manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        descriptor   `json:"config"`
	Layers        []descriptor `json:"layers"`
}

type runConfig struct {
	User       string              `json:"User,omitempty"`
	Env        []string            `json:"Env,omitempty"`
	Entrypoint []string            `json:"Entrypoint,omitempty"`
	WorkingDir string              `json:"WorkingDir,omitempty"`
	Labels     map[string]string   `json:"Labels,omitempty"`
	Volumes    map[string]struct{} `json:"Volumes,omitempty"`
}

type rootfs struct {
	Type    string   `json:"type"`
	DiffIDs []string `json:"diff_ids"`
}

type history struct {
	Created   string `json:"created"`
	CreatedBy string `json:"created_by"`
}

type imageConfig struct {
	Created      string    `json:"created"`
	Architecture string    `json:"architecture"`
	OS           string    `json:"os"`
	Config       runConfig `json:"config"`
	RootFS       rootfs    `json:"rootfs"`
	History      []history `json:"history"`
}

type dockerManifest struct {
	Config   string   `json:"Config"`
	RepoTags []string `json:"RepoTags"`
	Layers   []string `json:"Layers"`
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: imagetool build|verify [flags]"))
	}
	var err error
	switch os.Args[1] {
	case "build":
		err = build(os.Args[2:])
	case "verify":
		err = verify(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q (build or verify)", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "imagetool: %v\n", err)
	os.Exit(1)
}

func build(args []string) error {
	fs := flag.NewFlagSet("build", flag.ExitOnError)
	spec := fs.String("spec", "", "layer spec file")
	epoch := fs.Int64("epoch", -1, "SOURCE_DATE_EPOCH: every timestamp")
	tag := fs.String("tag", "", "REPO:TAG for the archive's RepoTags and the index annotations")
	layout := fs.String("layout", "", "OCI layout directory to write (replaced)")
	archive := fs.String("archive", "", "docker-archive tarball to write (replaced)")
	entrypoint := fs.String("entrypoint", "", "entrypoint as a JSON array")
	user := fs.String("user", "", "UID:GID")
	workdir := fs.String("workdir", "/", "working directory")
	var env, labels, volumes listFlag
	fs.Var(&env, "env", "K=V (repeatable)")
	fs.Var(&labels, "label", "K=V (repeatable)")
	fs.Var(&volumes, "volume", "PATH (repeatable)")
	_ = fs.Parse(args)
	if *spec == "" || *epoch < 0 || *tag == "" || *layout == "" || *archive == "" || *entrypoint == "" || *user == "" {
		return errors.New("build needs -spec, -epoch, -tag, -layout, -archive, -entrypoint and -user")
	}
	mtime := time.Unix(*epoch, 0).UTC()
	layer, err := layerTar(*spec, mtime)
	if err != nil {
		return err
	}
	var ep []string
	if err := json.Unmarshal([]byte(*entrypoint), &ep); err != nil {
		return fmt.Errorf("-entrypoint %q is not a JSON array of strings: %w", *entrypoint, err)
	}
	rc := runConfig{User: *user, Env: env, Entrypoint: ep, WorkingDir: *workdir}
	if len(labels) > 0 {
		rc.Labels = map[string]string{}
		for _, kv := range labels {
			k, v, ok := strings.Cut(kv, "=")
			if !ok {
				return fmt.Errorf("-label %q is not K=V", kv)
			}
			rc.Labels[k] = v
		}
	}
	if len(volumes) > 0 {
		rc.Volumes = map[string]struct{}{}
		for _, v := range volumes {
			rc.Volumes[v] = struct{}{}
		}
	}
	created := mtime.Format(time.RFC3339)
	layerDigest := digest(layer)
	cfg := imageConfig{
		Created:      created,
		Architecture: "amd64",
		OS:           "linux",
		Config:       rc,
		RootFS:       rootfs{Type: "layers", DiffIDs: []string{layerDigest}},
		History:      []history{{Created: created, CreatedBy: "hack/image"}},
	}
	cfgJSON, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	man := manifest{
		SchemaVersion: 2,
		MediaType:     mediaManifest,
		Config:        descriptor{MediaType: mediaConfig, Digest: digest(cfgJSON), Size: int64(len(cfgJSON))},
		Layers:        []descriptor{{MediaType: mediaLayer, Digest: layerDigest, Size: int64(len(layer))}},
	}
	manJSON, err := json.Marshal(man)
	if err != nil {
		return err
	}
	ref := *tag
	refName := ref[strings.LastIndex(ref, ":")+1:]
	idx := index{SchemaVersion: 2, MediaType: mediaIndex, Manifests: []descriptor{{
		MediaType: mediaManifest, Digest: digest(manJSON), Size: int64(len(manJSON)),
		Annotations: map[string]string{
			"io.containerd.image.name":          ref,
			"org.opencontainers.image.ref.name": refName,
		},
	}}}
	idxJSON, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	dockerJSON, err := json.Marshal([]dockerManifest{{
		Config:   blobPath(digest(cfgJSON)),
		RepoTags: []string{ref},
		Layers:   []string{blobPath(layerDigest)},
	}})
	if err != nil {
		return err
	}
	files := map[string][]byte{
		"oci-layout":              []byte(`{"imageLayoutVersion":"1.0.0"}`),
		"index.json":              idxJSON,
		blobPath(layerDigest):     layer,
		blobPath(digest(cfgJSON)): cfgJSON,
		blobPath(digest(manJSON)): manJSON,
	}
	if err := writeLayout(*layout, files); err != nil {
		return err
	}
	files["manifest.json"] = dockerJSON
	if err := writeArchive(*archive, files, mtime); err != nil {
		return err
	}
	fmt.Printf("%s %d\n", digest(manJSON), int64(len(layer)+len(cfgJSON)+len(manJSON)))
	return nil
}

func digest(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func blobPath(d string) string { return "blobs/sha256/" + strings.TrimPrefix(d, "sha256:") }

type entry struct {
	kind, path, target, source string
	mode                       int64
	uid, gid                   int
}

func parseSpec(file string) (map[string]entry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	entries := map[string]entry{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		fields := strings.Fields(sc.Text())
		if len(fields) == 0 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		e, err := parseEntry(fields)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n, err)
		}
		if _, dup := entries[e.path]; dup {
			return nil, fmt.Errorf("%s:%d: %s listed twice", file, n, e.path)
		}
		entries[e.path] = e
	}
	return entries, sc.Err()
}

func parseEntry(f []string) (entry, error) {
	want := map[string]int{"dir": 5, "file": 6, "symlink": 3}[f[0]]
	if want == 0 || len(f) != want {
		return entry{}, fmt.Errorf("bad entry %q", strings.Join(f, " "))
	}
	e := entry{kind: f[0], path: path.Clean(strings.TrimPrefix(f[1], "/"))}
	if e.kind == "symlink" {
		e.target, e.mode = f[2], 0o777
		return e, nil
	}
	mode, err1 := strconv.ParseInt(f[2], 8, 64)
	uid, err2 := strconv.Atoi(f[3])
	gid, err3 := strconv.Atoi(f[4])
	if err := errors.Join(err1, err2, err3); err != nil {
		return entry{}, fmt.Errorf("bad entry %q: %w", strings.Join(f, " "), err)
	}
	e.mode, e.uid, e.gid = mode, uid, gid
	if e.kind == "file" {
		e.source = f[5]
	}
	return e, nil
}

func layerTar(spec string, mtime time.Time) ([]byte, error) {
	entries, err := parseSpec(spec)
	if err != nil {
		return nil, err
	}
	for p := range entries {
		for d := path.Dir(p); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := entries[d]; !ok {
				entries[d] = entry{kind: "dir", path: d, mode: 0o755}
			}
		}
	}
	paths := make([]string, 0, len(entries))
	for p := range entries {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, p := range paths {
		e := entries[p]
		h := &tar.Header{Name: p, Mode: e.mode, Uid: e.uid, Gid: e.gid, ModTime: mtime, Format: tar.FormatPAX}
		var body []byte
		switch e.kind {
		case "dir":
			h.Typeflag, h.Name = tar.TypeDir, p+"/"
		case "symlink":
			h.Typeflag, h.Linkname = tar.TypeSymlink, e.target
		case "file":
			if body, err = os.ReadFile(e.source); err != nil {
				return nil, err
			}
			h.Typeflag, h.Size = tar.TypeReg, int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if _, err := tw.Write(body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeLayout(dir string, files map[string][]byte) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func writeArchive(file string, files map[string][]byte, mtime time.Time) error {
	names := []string{"blobs/", "blobs/sha256/"}
	for name := range files {
		names = append(names, name)
	}
	sort.Strings(names)
	tmp := file + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(f)
	for _, name := range names {
		h := &tar.Header{Name: name, Mode: 0o644, ModTime: mtime, Typeflag: tar.TypeReg, Size: int64(len(files[name])), Format: tar.FormatPAX}
		if strings.HasSuffix(name, "/") {
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(files[name]); err != nil {
			return err
		}
	}
	if err := errors.Join(tw.Close(), f.Close()); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// readBlob reads a blob of the layout and checks its digest and size against the descriptor.
func readBlob(dir string, d descriptor) ([]byte, error) {
	if !strings.HasPrefix(d.Digest, "sha256:") {
		return nil, fmt.Errorf("digest %q is not sha256", d.Digest)
	}
	body, err := os.ReadFile(filepath.Join(dir, blobPath(d.Digest)))
	if err != nil {
		return nil, err
	}
	if got := digest(body); got != d.Digest {
		return nil, fmt.Errorf("blob %s has digest %s", d.Digest, got)
	}
	if int64(len(body)) != d.Size {
		return nil, fmt.Errorf("blob %s has %d bytes, its descriptor says %d", d.Digest, len(body), d.Size)
	}
	return body, nil
}

func expectMedia(what, got, want string) error {
	if got != want {
		return fmt.Errorf("%s mediaType %q, want %q", what, got, want)
	}
	return nil
}

func verify(args []string) error {
	fs := flag.NewFlagSet("verify", flag.ExitOnError)
	layout := fs.String("layout", "", "OCI layout directory")
	entrypoint := fs.String("entrypoint", "", "expected entrypoint (JSON array)")
	user := fs.String("user", "", "expected UID:GID")
	_ = fs.Parse(args)
	var ol struct {
		Version string `json:"imageLayoutVersion"`
	}
	if err := readJSON(filepath.Join(*layout, "oci-layout"), &ol); err != nil {
		return err
	}
	if ol.Version != "1.0.0" {
		return fmt.Errorf("oci-layout imageLayoutVersion %q", ol.Version)
	}
	var idx index
	if err := readJSON(filepath.Join(*layout, "index.json"), &idx); err != nil {
		return err
	}
	if err := expectMedia("index", idx.MediaType, mediaIndex); err != nil {
		return err
	}
	if idx.SchemaVersion != 2 || len(idx.Manifests) != 1 {
		return fmt.Errorf("index: schemaVersion %d with %d manifests, want 2 with 1", idx.SchemaVersion, len(idx.Manifests))
	}
	md := idx.Manifests[0]
	if err := expectMedia("index entry", md.MediaType, mediaManifest); err != nil {
		return err
	}
	body, err := readBlob(*layout, md)
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	var man manifest
	if err := json.Unmarshal(body, &man); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if err := errors.Join(expectMedia("manifest", man.MediaType, mediaManifest), expectMedia("config", man.Config.MediaType, mediaConfig)); err != nil {
		return err
	}
	cfgBody, err := readBlob(*layout, man.Config)
	if err != nil {
		return fmt.Errorf("config: %w", err)
	}
	var cfg imageConfig
	if err := json.Unmarshal(cfgBody, &cfg); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(cfg.RootFS.DiffIDs) != len(man.Layers) {
		return fmt.Errorf("config has %d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(man.Layers))
	}
	for i, l := range man.Layers {
		if err := expectMedia("layer", l.MediaType, mediaLayer); err != nil {
			return err
		}
		if _, err := readBlob(*layout, l); err != nil {
			return fmt.Errorf("layer %d: %w", i, err)
		}
		// Uncompressed layers: the diff_id is the layer's own digest.
		if cfg.RootFS.DiffIDs[i] != l.Digest {
			return fmt.Errorf("layer %d: diff_id %s, digest %s", i, cfg.RootFS.DiffIDs[i], l.Digest)
		}
	}
	if cfg.OS != "linux" || cfg.Architecture != "amd64" {
		return fmt.Errorf("config platform %s/%s, want linux/amd64", cfg.OS, cfg.Architecture)
	}
	if *entrypoint != "" {
		got, _ := json.Marshal(cfg.Config.Entrypoint)
		var want []string
		if err := json.Unmarshal([]byte(*entrypoint), &want); err != nil {
			return err
		}
		wantJSON, _ := json.Marshal(want)
		if !bytes.Equal(got, wantJSON) {
			return fmt.Errorf("entrypoint %s, want %s", got, wantJSON)
		}
	}
	if *user != "" && cfg.Config.User != *user {
		return fmt.Errorf("user %q, want %q", cfg.Config.User, *user)
	}
	fmt.Printf("%s entrypoint=%s user=%s layers=%d\n", md.Digest, strings.Join(cfg.Config.Entrypoint, " "), cfg.Config.User, len(man.Layers))
	return nil
}

func readJSON(file string, v any) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	dec := json.NewDecoder(f)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	return nil
}

