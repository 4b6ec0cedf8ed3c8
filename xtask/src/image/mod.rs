//! OCI images without a registry: each image is one deterministic layer built here,
//! written as an OCI archive into the cache and loaded into the kind nodes' containerd.
//! Nothing is ever pulled: pods use these names verbatim with `imagePullPolicy:
//! IfNotPresent` or `Never`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::json;

use crate::cmd::{cargo, cmd, go};
use crate::digest::sha256_hex;
use crate::layout::Layout;

pub const SAMPLE_REPOSITORY: &str = "registry.local/drover/sample";
pub const DROVER_REPOSITORY: &str = "registry.local/drover/drover";
/// The example StatefulApp's image: the cluster build's etcd and etcdctl.
pub const ETCD_REPOSITORY: &str = "registry.local/drover/etcd";
/// The sample image's tags; they differ only in the version the server reports.
pub const SAMPLE_VERSIONS: [&str; 3] = ["1", "2", "3"];

#[derive(Debug, Args)]
pub struct ImageArgs {
    /// Images to build: sample, etcd, drover (default: all).
    names: Vec<String>,
    /// Only write the OCI archives; do not load them into the kind cluster's nodes.
    #[arg(long)]
    pub no_load: bool,
}

impl ImageArgs {
    /// The images asked for (every one when none is named).
    pub fn names(&self) -> Vec<&str> {
        if self.names.is_empty() {
            ALL.to_vec()
        } else {
            self.names.iter().map(String::as_str).collect()
        }
    }
}

const ALL: [&str; 3] = ["sample", "etcd", "drover"];

/// Builds the named images; returns their archives.
pub fn build_named(layout: &Layout, names: &[&str]) -> Result<Vec<PathBuf>> {
    let mut archives = vec![];
    for name in names {
        let specs = match *name {
            "sample" => SAMPLE_VERSIONS
                .iter()
                .map(|v| sample(layout, v))
                .collect::<Result<_>>()?,
            "etcd" => vec![etcd(layout)?],
            "drover" => vec![drover(layout)?],
            other => bail!("no image named {other:?}; known: {}", ALL.join(", ")),
        };
        for spec in specs {
            let archive = write_archive(layout, &spec)?;
            println!("image {} -> {}", spec.reference, archive.display());
            archives.push(archive);
        }
    }
    Ok(archives)
}

/// Builds the drover image from a release build; returns its reference and archive.
/// The tag carries the binary's digest, so a new build is a new image for the kubelet.
pub fn build_drover(layout: &Layout) -> Result<(String, PathBuf)> {
    let spec = drover(layout)?;
    let archive = write_archive(layout, &spec)?;
    println!("image {} -> {}", spec.reference, archive.display());
    Ok((spec.reference, archive))
}

pub fn metrics_server_image(layout: &Layout) -> Result<String> {
    Ok(format!(
        "registry.local/k8s/metrics-server:{}",
        layout
            .versions
            .get("metrics-server")?
            .version
            .trim_start_matches('v')
    ))
}

/// One file, directory or symlink of an image's single layer.
#[derive(Debug)]
pub(crate) enum Entry {
    File {
        path: String,
        data: Vec<u8>,
        mode: u32,
    },
    Dir {
        path: String,
        mode: u32,
    },
    Symlink {
        path: String,
        target: String,
    },
}

#[derive(Debug)]
pub(crate) struct ImageSpec {
    pub reference: String,
    pub entries: Vec<Entry>,
    pub entrypoint: Vec<String>,
    pub user: String,
    pub env: Vec<String>,
    pub exposed_ports: Vec<u16>,
}

pub(crate) fn pause(layout: &Layout, reference: &str) -> Result<ImageSpec> {
    let out = layout.images().join("build");
    fs::create_dir_all(&out)?;
    let binary = out.join("pause");
    cmd("gcc")
        .args(["-Os", "-static", "-Wall", "-Werror", "-o"])
        .arg(&binary)
        .arg(layout.repo.join("images/pause/pause.c"))
        .run()
        .context("building the pause binary (needs gcc and libc6-dev)")?;
    Ok(ImageSpec {
        reference: reference.into(),
        entries: vec![Entry::File {
            path: "pause".into(),
            data: fs::read(&binary)?,
            mode: 0o755,
        }],
        entrypoint: vec!["/pause".into()],
        user: "65535:65535".into(),
        env: vec![],
        exposed_ports: vec![],
    })
}

/// An image holding one statically linked binary from the cluster build.
pub(crate) fn single_binary(
    layout: &Layout,
    binary: &str,
    reference: &str,
    user: &str,
) -> Result<ImageSpec> {
    let path = layout.bin(binary)?;
    if !path.is_file() {
        bail!(
            "{} is missing: run `cargo xtask cluster build` first",
            path.display()
        );
    }
    binary_image(&path, binary, reference, user)
}

/// An image holding the statically linked binary at `path` as `/name`, its entrypoint.
pub(crate) fn binary_image(
    path: &Path,
    name: &str,
    reference: &str,
    user: &str,
) -> Result<ImageSpec> {
    let data = fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let mut entries = base_entries();
    entries.push(Entry::File {
        path: name.into(),
        data,
        mode: 0o755,
    });
    Ok(ImageSpec {
        reference: reference.into(),
        entries,
        entrypoint: vec![format!("/{name}")],
        user: format!("{user}:{user}"),
        env: vec![],
        exposed_ports: vec![],
    })
}

/// etcd and etcdctl as the cluster build made them (its control plane runs the same), on
/// the busybox userland (a shell for the example's start script), for the example
/// StatefulApp `examples/etcd.yaml`.
fn etcd(layout: &Layout) -> Result<ImageSpec> {
    let version = &layout.versions.get("etcd")?.version;
    let mut entries = base_entries();
    entries.extend(busybox_entries()?);
    for binary in ["etcd", "etcdctl"] {
        let path = layout.bin(binary)?;
        if !path.is_file() {
            bail!(
                "{} is missing: run `cargo xtask cluster build` first",
                path.display()
            );
        }
        let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        add_file(
            &mut entries,
            Path::new(&format!("/usr/local/bin/{binary}")),
            data,
            0o755,
        );
    }
    Ok(ImageSpec {
        reference: format!("{ETCD_REPOSITORY}:{version}"),
        entries,
        entrypoint: vec!["/usr/local/bin/etcd".into()],
        user: "65534:65534".into(),
        env: vec!["PATH=/usr/local/bin:/bin:/sbin:/usr/bin:/usr/sbin".into()],
        exposed_ports: vec![2379, 2380],
    })
}

/// The sample workload: the Go server of `images/sample` on a static busybox userland
/// (so `kubectl exec` has a shell, wget and nslookup).
fn sample(layout: &Layout, version: &str) -> Result<ImageSpec> {
    let out = layout.images().join("build");
    fs::create_dir_all(&out)?;
    let binary = out.join(format!("sample-{version}"));
    go(layout, &layout.repo.join("images/sample"))
        .args(["build", "-trimpath", "-ldflags"])
        .arg(format!("-s -w -X main.version={version}"))
        .arg("-o")
        .arg(&binary)
        .arg(".")
        .run()
        .context("building the sample server")?;
    let mut entries = base_entries();
    entries.extend(busybox_entries()?);
    entries.push(Entry::Dir {
        path: "config".into(),
        mode: 0o755,
    });
    entries.push(Entry::File {
        path: "sample".into(),
        data: fs::read(&binary)?,
        mode: 0o755,
    });
    Ok(ImageSpec {
        reference: format!("{SAMPLE_REPOSITORY}:{version}"),
        entries,
        entrypoint: vec!["/sample".into()],
        user: "65534:65534".into(),
        env: vec!["PATH=/bin:/sbin:/usr/bin:/usr/sbin".into()],
        exposed_ports: vec![8080],
    })
}

/// Builds drover's release binaries — the controller and the `kubectl drover` plugin —
/// and returns the path of `name`, one of them. One cargo run builds both: their shared
/// dependencies are then compiled once, where two runs with different feature sets
/// would compile them twice.
pub fn release_binary(layout: &Layout, name: &str) -> Result<PathBuf> {
    cargo()
        .current_dir(&layout.repo)
        .args(["build", "--release", "--locked"])
        // Target flags apply to every package given: each binary is named.
        .args(["-p", "drover-controllers", "-p", "kubectl-drover"])
        .args(["--bin", "drover", "--bin", "kubectl-drover"])
        .run_inherit()
        .context("building drover's release binaries")?;
    Ok(layout.target_dir().join("release").join(name))
}

/// The `drover` binary (release build) and the shared libraries it links, at the paths
/// the dynamic loader looks for them.
fn drover(layout: &Layout) -> Result<ImageSpec> {
    let binary = release_binary(layout, "drover")?;
    let data = fs::read(&binary).with_context(|| format!("reading {}", binary.display()))?;
    let version = cmd(&binary).arg("--version").output()?;
    let version = version
        .split_whitespace()
        .last()
        .unwrap_or("0.0.0")
        .to_string();
    let mut entries = base_entries();
    for lib in shared_libraries(&binary)? {
        add_file(&mut entries, &lib, fs::read(&lib)?, 0o755);
    }
    entries.push(Entry::File {
        path: "drover".into(),
        data: data.clone(),
        mode: 0o755,
    });
    Ok(ImageSpec {
        reference: format!("{DROVER_REPOSITORY}:{version}-{}", &sha256_hex(&data)[..12]),
        entries,
        entrypoint: vec!["/drover".into()],
        user: "65532:65532".into(),
        env: vec![],
        // Metrics, health.
        exposed_ports: vec![8080, 8081],
    })
}

/// The shared libraries (and the loader) a binary needs, as `ldd` resolves them.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let out = cmd("ldd").arg(binary).output()?;
    Ok(parse_ldd(&out))
}

fn parse_ldd(out: &str) -> Vec<PathBuf> {
    out.lines()
        .filter_map(|line| {
            let path = match line.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => line.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| PathBuf::from(path))
        })
        .collect()
}

/// Adds a file at an absolute path, with directory entries for its parents.
pub(crate) fn add_file(entries: &mut Vec<Entry>, path: &Path, data: Vec<u8>, mode: u32) {
    let relative = path.to_string_lossy().trim_start_matches('/').to_string();
    add_parent_dirs(entries, &relative);
    entries.push(Entry::File {
        path: relative,
        data,
        mode,
    });
}

/// Directory entries for every parent of a relative path that has none yet, outermost
/// first (a tar must create `usr` before `usr/bin`).
pub(crate) fn add_parent_dirs(entries: &mut Vec<Entry>, relative: &str) {
    let mut prefix = String::new();
    let parts: Vec<&str> = relative.split('/').collect();
    for part in &parts[..parts.len().saturating_sub(1)] {
        if !prefix.is_empty() {
            prefix.push('/');
        }
        prefix.push_str(part);
        if !entries
            .iter()
            .any(|e| matches!(e, Entry::Dir { path, .. } if *path == prefix))
        {
            entries.push(Entry::Dir {
                path: prefix.clone(),
                mode: 0o755,
            });
        }
    }
}

/// /etc/passwd, /etc/group and a writable /tmp, which most programs expect.
pub(crate) fn base_entries() -> Vec<Entry> {
    vec![
        Entry::Dir {
            path: "etc".into(),
            mode: 0o755,
        },
        Entry::File {
            path: "etc/passwd".into(),
            data: b"root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/home/nonroot:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n".to_vec(),
            mode: 0o644,
        },
        Entry::File {
            path: "etc/group".into(),
            data: b"root:x:0:\nnonroot:x:65532:\nnogroup:x:65534:\n".to_vec(),
            mode: 0o644,
        },
        Entry::Dir {
            path: "tmp".into(),
            mode: 0o1777,
        },
    ]
}

/// Debian's static busybox and a symlink for each of its applets.
pub(crate) fn busybox_entries() -> Result<Vec<Entry>> {
    let busybox = Path::new("/bin/busybox");
    let data = fs::read(busybox).context("reading /bin/busybox (package busybox-static)")?;
    let applets = cmd(busybox).arg("--list-full").output()?;
    let mut entries = vec![];
    add_file(&mut entries, Path::new("/bin/busybox"), data, 0o755);
    for applet in applets.lines().filter(|a| *a != "bin/busybox") {
        add_parent_dirs(&mut entries, applet);
        entries.push(Entry::Symlink {
            path: applet.to_string(),
            target: "/bin/busybox".into(),
        });
    }
    Ok(entries)
}

/// The uncompressed layer: a tar with fixed owners and times, so the same inputs give
/// the same digest.
fn layer_tar(entries: &[Entry]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for entry in entries {
        let mut header = tar::Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(0);
        match entry {
            Entry::File { path, data, mode } => {
                header.set_entry_type(tar::EntryType::Regular);
                header.set_mode(*mode);
                header.set_size(data.len() as u64);
                tar.append_data(&mut header, path, data.as_slice())?;
            }
            Entry::Dir { path, mode } => {
                header.set_entry_type(tar::EntryType::Directory);
                header.set_mode(*mode);
                header.set_size(0);
                tar.append_data(&mut header, format!("{path}/"), std::io::empty())?;
            }
            Entry::Symlink { path, target } => {
                header.set_entry_type(tar::EntryType::Symlink);
                header.set_mode(0o777);
                header.set_size(0);
                tar.append_link(&mut header, path, target)?;
            }
        }
    }
    Ok(tar.into_inner()?)
}

/// Writes the image as an OCI image-layout archive named after its reference.
pub(crate) fn write_archive(layout: &Layout, spec: &ImageSpec) -> Result<PathBuf> {
    let (_, tag) = spec
        .reference
        .rsplit_once(':')
        .context("image reference has no tag")?;
    let layer = layer_tar(&spec.entries)?;
    let layer_digest = sha256_hex(&layer);
    let mut exposed = serde_json::Map::new();
    for port in &spec.exposed_ports {
        exposed.insert(format!("{port}/tcp"), json!({}));
    }
    let config = serde_json::to_vec(&json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {
            "Entrypoint": spec.entrypoint,
            "User": spec.user,
            "Env": spec.env,
            "ExposedPorts": exposed,
            "WorkingDir": "/",
        },
        "rootfs": {"type": "layers", "diff_ids": [format!("sha256:{layer_digest}")]},
        "history": [{"created_by": "cargo xtask image"}],
    }))?;
    let config_digest = sha256_hex(&config);
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": format!("sha256:{config_digest}"),
            "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": format!("sha256:{layer_digest}"),
            "size": layer.len(),
        }],
    }))?;
    let manifest_digest = sha256_hex(&manifest);
    let index = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": format!("sha256:{manifest_digest}"),
            "size": manifest.len(),
            "platform": {"architecture": "amd64", "os": "linux"},
            "annotations": {
                // containerd names the imported image after this annotation.
                "io.containerd.image.name": spec.reference,
                "org.opencontainers.image.ref.name": tag,
            },
        }],
    }))?;

    let mut archive = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| -> Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_size(data.len() as u64);
        archive.append_data(&mut header, path, data)?;
        Ok(())
    };
    add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    add("index.json", &index)?;
    add(&format!("blobs/sha256/{manifest_digest}"), &manifest)?;
    add(&format!("blobs/sha256/{config_digest}"), &config)?;
    add(&format!("blobs/sha256/{layer_digest}"), &layer)?;
    let bytes = archive.into_inner()?;

    fs::create_dir_all(layout.images())?;
    let file = layout
        .images()
        .join(format!("{}.tar", spec.reference.replace(['/', ':'], "_")));
    fs::write(&file, bytes)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etcd_example_names_the_image_up_loads() {
        let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let versions =
            crate::versions::Versions::load(&repo.join("cluster/versions.toml")).unwrap();
        let image = format!(
            "{ETCD_REPOSITORY}:{}",
            versions.get("etcd").unwrap().version
        );
        let example = fs::read_to_string(repo.join("examples/etcd.yaml")).unwrap();
        assert!(
            example.contains(&format!("image: {image}\n")),
            "examples/etcd.yaml must run {image}, the image `cargo xtask up` loads"
        );
    }

    fn spec() -> ImageSpec {
        ImageSpec {
            reference: "registry.local/test/x:1".into(),
            entries: vec![
                Entry::Dir {
                    path: "bin".into(),
                    mode: 0o755,
                },
                Entry::File {
                    path: "bin/x".into(),
                    data: b"hello".to_vec(),
                    mode: 0o755,
                },
                Entry::Symlink {
                    path: "bin/y".into(),
                    target: "/bin/x".into(),
                },
            ],
            entrypoint: vec!["/bin/x".into()],
            user: "65534:65534".into(),
            env: vec![],
            exposed_ports: vec![8080],
        }
    }

    #[test]
    fn reads_library_paths_from_ldd() {
        let out = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x7f)\n\
                   \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x7f)\n\t/lib64/ld-linux-x86-64.so.2 (0x7f)\n";
        assert_eq!(
            parse_ldd(out),
            [
                PathBuf::from("/lib/x86_64-linux-gnu/libgcc_s.so.1"),
                PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
                PathBuf::from("/lib64/ld-linux-x86-64.so.2"),
            ]
        );
        let mut entries = vec![];
        add_file(
            &mut entries,
            Path::new("/lib/x86_64-linux-gnu/libc.so.6"),
            vec![],
            0o755,
        );
        add_file(
            &mut entries,
            Path::new("/lib/x86_64-linux-gnu/libm.so.6"),
            vec![],
            0o755,
        );
        let dirs = entries
            .iter()
            .filter(|e| matches!(e, Entry::Dir { .. }))
            .count();
        assert_eq!(dirs, 2, "lib and lib/x86_64-linux-gnu, once each");
    }

    #[test]
    fn layers_are_reproducible() {
        let a = layer_tar(&spec().entries).unwrap();
        let b = layer_tar(&spec().entries).unwrap();
        assert_eq!(sha256_hex(&a), sha256_hex(&b));
    }

    #[test]
    fn layer_holds_the_entries() {
        let layer = layer_tar(&spec().entries).unwrap();
        let mut archive = tar::Archive::new(layer.as_slice());
        let names: Vec<(String, tar::EntryType)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().to_string_lossy().into_owned(),
                    e.header().entry_type(),
                )
            })
            .collect();
        assert_eq!(
            names,
            vec![
                ("bin/".to_string(), tar::EntryType::Directory),
                ("bin/x".to_string(), tar::EntryType::Regular),
                ("bin/y".to_string(), tar::EntryType::Symlink),
            ]
        );
    }
}
