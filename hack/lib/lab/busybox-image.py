#!/usr/bin/env python3
# The lab's own images (the pod sandbox and the demo HTTP server, busybox): writes a docker-save
# tarball (`ctr image import`) holding one layer, reproducibly (fixed mtimes, sorted entries,
# no compression). The product's images come from hack/image.
#
#   busybox-image.py OUT.tar REPO:TAG --entrypoint JSON [--cmd JSON] [--user U] [--env K=V]...
#       [--file SRC:DST[:MODE]]... [--link TARGET:DST]... [--dir DST]...
import argparse, hashlib, io, json, os, tarfile

p = argparse.ArgumentParser()
p.add_argument("out"); p.add_argument("tag")
p.add_argument("--entrypoint", default="null"); p.add_argument("--cmd", default="null")
p.add_argument("--user", default=""); p.add_argument("--env", action="append", default=[])
p.add_argument("--file", action="append", default=[]); p.add_argument("--link", action="append", default=[])
p.add_argument("--dir", action="append", default=[]); p.add_argument("--label", action="append", default=[])
a = p.parse_args()

entries = {}
def parents(path):
    parts = path.strip("/").split("/")[:-1]
    for i in range(1, len(parts) + 1):
        entries.setdefault("/".join(parts[:i]), ("dir", None, 0o755))
for d in a.dir:
    parents(d + "/x"); entries[d.strip("/")] = ("dir", None, 0o1777 if d.strip("/") == "tmp" else 0o755)
for f in a.file:
    src, dst, *mode = f.split(":")
    parents(dst); entries[dst.strip("/")] = ("file", src, int(mode[0], 8) if mode else 0o755)
for l in a.link:
    target, dst = l.split(":")
    parents(dst); entries[dst.strip("/")] = ("link", target, 0o777)

layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as t:
    for name in sorted(entries):
        kind, src, mode = entries[name]
        ti = tarfile.TarInfo(name); ti.mtime = 0; ti.mode = mode; ti.uid = ti.gid = 0
        if kind == "dir":
            ti.type = tarfile.DIRTYPE; t.addfile(ti)
        elif kind == "link":
            ti.type = tarfile.SYMTYPE; ti.linkname = src; t.addfile(ti)
        else:
            data = open(src, "rb").read(); ti.size = len(data); t.addfile(ti, io.BytesIO(data))
layer = layer.getvalue()
diff_id = "sha256:" + hashlib.sha256(layer).hexdigest()
config = {
    "architecture": "amd64", "os": "linux", "created": "1970-01-01T00:00:00Z",
    "config": {"Entrypoint": json.loads(a.entrypoint), "Cmd": json.loads(a.cmd), "User": a.user,
               "Env": a.env, "Labels": dict(l.split("=", 1) for l in a.label)},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/lib/lab/busybox-image.py"}],
}
config = json.dumps(config, sort_keys=True).encode()
config_name = hashlib.sha256(config).hexdigest() + ".json"
manifest = json.dumps([{"Config": config_name, "RepoTags": [a.tag], "Layers": ["layer.tar"]}]).encode()
with tarfile.open(a.out, mode="w", format=tarfile.PAX_FORMAT) as t:
    for name, data in ((config_name, config), ("layer.tar", layer), ("manifest.json", manifest)):
        ti = tarfile.TarInfo(name); ti.mtime = 0; ti.size = len(data); t.addfile(ti, io.BytesIO(data))
print(a.out)
