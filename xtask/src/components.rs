//! `cargo xtask cluster build`: the pinned upstream components, built from the Go module
//! proxy into the cache. Each component is built in a throw-away consumer module (so
//! modules whose go.mod has `replace` directives, like Kubernetes and etcd, build too) and
//! skipped when the cache already holds it at the same version and recipe.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::cmd::{cmd, go};
use crate::layout::Layout;
use crate::versions::{COMPONENTS, Pin, Versions};

/// How one component is built.
#[derive(Debug)]
struct Recipe {
    component: &'static str,
    module: String,
    version: String,
    /// `(binary name, Go main package)`.
    binaries: Vec<(&'static str, String)>,
    /// Further modules required at the same version (etcdctl lives in its own module).
    extra_modules: Vec<String>,
    /// `-X` settings that stamp the version into the binaries.
    version_vars: Vec<(String, String)>,
    /// Kubernetes consumes its staging modules through `./staging` replaces, which a
    /// consumer must point at the published `v0.MINOR.PATCH` modules instead.
    staging_replaces: bool,
    /// Needs cgo (linked statically all the same, so the binary runs in any image).
    cgo: bool,
}

fn recipe(component: &'static str, pin: &Pin) -> Result<Recipe> {
    let v = pin.version.clone();
    let m = pin.module.clone();
    let mut r = Recipe {
        component,
        module: m.clone(),
        version: v.clone(),
        binaries: vec![],
        extra_modules: vec![],
        version_vars: vec![],
        staging_replaces: false,
        cgo: false,
    };
    match component {
        "kubernetes" => {
            let (major, minor) = Versions::major_minor(&v)?;
            for bin in [
                "kube-apiserver",
                "kube-controller-manager",
                "kube-scheduler",
                "kubelet",
                "kube-proxy",
                "kubectl",
                "kubeadm",
            ] {
                r.binaries.push((bin, format!("{m}/cmd/{bin}")));
            }
            // The variables hack/lib/version.sh sets; without them every binary reports
            // v0.0.0-master and the kubelet registers with that version.
            for pkg in [
                "k8s.io/component-base/version",
                "k8s.io/client-go/pkg/version",
            ] {
                for (var, value) in [
                    ("gitVersion", v.clone()),
                    ("gitMajor", major.to_string()),
                    ("gitMinor", minor.to_string()),
                    ("gitTreeState", "clean".to_string()),
                ] {
                    r.version_vars.push((format!("{pkg}.{var}"), value));
                }
            }
            r.staging_replaces = true;
        }
        "etcd" => {
            r.binaries.push(("etcd", m.clone()));
            let ctl = m.replace("/server/", "/etcdctl/");
            r.binaries.push(("etcdctl", ctl.clone()));
            r.extra_modules.push(ctl);
            r.version_vars
                .push(("go.etcd.io/etcd/api/v3/version.GitSHA".into(), v.clone()));
        }
        "kwok" => r.binaries.push(("kwok", format!("{m}/cmd/kwok"))),
        "helm" => {
            r.binaries.push(("helm", format!("{m}/cmd/helm")));
            r.version_vars
                .push((format!("{m}/internal/version.version"), v.clone()));
        }
        "coredns" => {
            r.binaries.push(("coredns", m.clone()));
            r.version_vars
                .push((format!("{m}/coremain.GitCommit"), v.clone()));
        }
        "metrics-server" => {
            r.binaries
                .push(("metrics-server", format!("{m}/cmd/metrics-server")));
            r.version_vars
                .push(("k8s.io/client-go/pkg/version.gitVersion".into(), v.clone()));
        }
        "kind" => r.binaries.push(("kind", m.clone())),
        "flannel" => {
            r.binaries.push(("flanneld", m.clone()));
            r.version_vars
                .push((format!("{m}/pkg/version.Version"), v.clone()));
            // Its udp backend is written in C.
            r.cgo = true;
        }
        "local-path-provisioner" => {
            r.binaries.push(("local-path-provisioner", m.clone()));
            r.version_vars.push(("main.VERSION".into(), v.clone()));
        }
        "external-provisioner" => {
            r.binaries
                .push(("csi-provisioner", format!("{m}/cmd/csi-provisioner")));
            r.version_vars.push(("main.version".into(), v.clone()));
        }
        "external-resizer" => {
            r.binaries
                .push(("csi-resizer", format!("{m}/cmd/csi-resizer")));
            r.version_vars.push(("main.version".into(), v.clone()));
        }
        "external-snapshotter" => {
            for bin in ["csi-snapshotter", "snapshot-controller"] {
                r.binaries.push((bin, format!("{m}/cmd/{bin}")));
            }
            r.version_vars.push(("main.version".into(), v.clone()));
        }
        other => bail!("no build recipe for {other:?}"),
    }
    Ok(r)
}

impl Recipe {
    /// Identifies the recipe in the cache stamp; stable across Rust releases (unlike
    /// `DefaultHasher`), so a toolchain upgrade does not trigger a rebuild.
    fn fingerprint(&self) -> String {
        crate::digest::sha256_hex(format!("{self:?}").as_bytes())
    }

    fn ldflags(&self) -> String {
        let mut flags = String::from("-s -w");
        if self.cgo {
            flags.push_str(" -linkmode external -extldflags -static");
        }
        for (var, value) in &self.version_vars {
            flags.push_str(&format!(" -X {var}={value}"));
        }
        flags
    }
}

/// Builds every pinned component that the cache does not already hold.
pub fn build_all(layout: &Layout) -> Result<()> {
    check_go()?;
    let started = Instant::now();
    for component in COMPONENTS {
        let pin = layout.versions.get(component)?;
        build_one(layout, &recipe(component, pin)?)?;
    }
    println!(
        "all components built ({}); binaries under {}",
        elapsed(started),
        layout.cache.join("bin").display()
    );
    Ok(())
}

/// The client tools a user of the cluster runs, linked into one directory for `PATH`.
const CLIENT_BINARIES: [&str; 2] = ["kubectl", "helm"];

/// Links the client tools into [`Layout::client_bin_dir`].
pub fn link_client_binaries(layout: &Layout) -> Result<()> {
    let dir = layout.client_bin_dir();
    fs::create_dir_all(&dir)?;
    for bin in CLIENT_BINARIES {
        let link = dir.join(bin);
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(layout.bin(bin)?, &link)
            .with_context(|| format!("linking {}", link.display()))?;
    }
    Ok(())
}

fn check_go() -> Result<()> {
    let version = cmd("go").arg("version").output().context(
        "the Go toolchain is needed to build the cluster's components: install Go 1.26 or newer",
    )?;
    println!("using {}", version.trim());
    Ok(())
}

fn stamp_path(layout: &Layout, r: &Recipe) -> std::path::PathBuf {
    layout.build_bin(r.component, &r.version).join(".built")
}

fn is_built(layout: &Layout, r: &Recipe) -> bool {
    let dir = layout.build_bin(r.component, &r.version);
    fs::read_to_string(stamp_path(layout, r)).is_ok_and(|s| s.trim() == r.fingerprint())
        && r.binaries.iter().all(|(bin, _)| dir.join(bin).is_file())
}

fn build_one(layout: &Layout, r: &Recipe) -> Result<()> {
    let name = format!("{} {}", r.component, r.version);
    if is_built(layout, r) {
        println!("{name}: cached");
        return Ok(());
    }
    let started = Instant::now();
    println!("{name}: building {}", binaries_list(r));
    let src = layout.build_src(r.component, &r.version);
    fs::create_dir_all(&src)?;
    let log_path = layout.build_log(r.component);
    fs::create_dir_all(log_path.parent().context("log path has no parent")?)?;

    fs::write(src.join("go.mod"), consumer_go_mod(layout, r)?)?;
    let _ = fs::remove_file(src.join("go.sum"));
    let mut get = go(layout, &src).arg("get");
    for (_, pkg) in &r.binaries {
        get = get.arg(format!("{pkg}@{}", r.version));
    }
    println!("{name}: fetching modules");
    get.output()
        .with_context(|| format!("{name}: fetching the module graph"))?;

    let packages: Vec<&str> = r.binaries.iter().map(|(_, p)| p.as_str()).collect();
    let total = go(layout, &src)
        .args(["list", "-deps"])
        .args(&packages)
        .output()
        .map(|out| out.lines().count())
        .unwrap_or(0);

    let out = layout.build_bin(r.component, &r.version);
    let partial = out.with_extension("partial");
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(&partial)?;
    let mut build = go(layout, &src)
        .env("CGO_ENABLED", if r.cgo { "1" } else { "0" })
        .args(["build", "-v", "-trimpath", "-ldflags"])
        .arg(r.ldflags())
        .arg("-o")
        .arg(format!("{}/", partial.display()))
        .args(&packages)
        .into_inner();
    let mut child = build
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("could not start go build")?;
    let stderr = child.stderr.take().context("go build has no stderr")?;
    let compiled = Arc::new(AtomicUsize::new(0));
    let counter = compiled.clone();
    let log = fs::File::create(&log_path)?;
    let reader = std::thread::spawn(move || {
        let mut log = log;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = writeln!(log, "{line}");
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });
    let mut last_report = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if last_report.elapsed() >= Duration::from_secs(20) {
            last_report = Instant::now();
            let done = compiled.load(Ordering::Relaxed);
            match (done * 100).checked_div(total) {
                Some(percent) => println!(
                    "{name}: compiled {done} of at most {total} packages ({}%), {}",
                    percent.min(99),
                    elapsed(started)
                ),
                None => println!("{name}: compiled {done} packages, {}", elapsed(started)),
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let _ = reader.join();
    if !status.success() {
        let log = fs::read_to_string(&log_path).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        bail!(
            "{name}: go build failed ({status}); last lines of {}:\n{}",
            log_path.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    for (bin, pkg) in &r.binaries {
        let produced = partial.join(go_binary_name(pkg));
        if produced != partial.join(bin) {
            fs::rename(&produced, partial.join(bin))
                .with_context(|| format!("{name}: go build produced no {}", produced.display()))?;
        }
    }
    fs::write(partial.join(".built"), r.fingerprint())?;
    let _ = fs::remove_dir_all(&out);
    fs::rename(&partial, &out)?;
    println!("{name}: built in {}", elapsed(started));
    Ok(())
}

fn binaries_list(r: &Recipe) -> String {
    r.binaries
        .iter()
        .map(|(b, _)| *b)
        .collect::<Vec<_>>()
        .join(", ")
}

/// `go mod download -json` of one module version: where its files (`Dir`) and its go.mod
/// (`GoMod`) are in the module cache.
pub fn download(layout: &Layout, module: &str, version: &str) -> Result<serde_json::Value> {
    let scratch = layout.cache.join("src");
    fs::create_dir_all(&scratch)?;
    let info = go(layout, &scratch)
        .args(["mod", "download", "-json"])
        .arg(format!("{module}@{version}"))
        .output()
        .with_context(|| format!("downloading {module}@{version}"))?;
    Ok(serde_json::from_str(&info)?)
}

/// The go.mod of the consumer module: requires the pinned module, mirrors its `go` and
/// `godebug` lines (so runtime defaults match upstream's own build), adds the staging
/// replaces Kubernetes needs, and repeats upstream's replaces by another version (the
/// CSI sidecars pin their Kubernetes libraries that way).
fn consumer_go_mod(layout: &Layout, r: &Recipe) -> Result<String> {
    let info = download(layout, &r.module, &r.version)?;
    let upstream_mod = info["GoMod"]
        .as_str()
        .context("go mod download reported no GoMod path")?;
    let upstream = fs::read_to_string(upstream_mod)?;
    let parsed = UpstreamGoMod::parse(&upstream);

    let mut out = format!("module drover.local/build/{}\n\n", r.component);
    out.push_str(&format!("go {}\n\n", parsed.go.unwrap_or("1.24")));
    for line in &parsed.godebug {
        out.push_str(&format!("godebug {line}\n"));
    }
    out.push_str(&format!("\nrequire {} {}\n", r.module, r.version));
    for m in &r.extra_modules {
        out.push_str(&format!("require {m} {}\n", r.version));
    }
    if r.staging_replaces {
        let (_, minor) = Versions::major_minor(&r.version)?;
        let patch = r.version.rsplit('.').next().unwrap_or("0");
        let staging_version = format!("v0.{minor}.{patch}");
        if parsed.staging.is_empty() {
            bail!(
                "{}@{} has no ./staging replaces to mirror",
                r.module,
                r.version
            );
        }
        out.push_str("\nreplace (\n");
        for m in &parsed.staging {
            out.push_str(&format!("\t{m} => {m} {staging_version}\n"));
        }
        out.push_str(")\n");
    }
    for (old, new) in &parsed.pinned {
        out.push_str(&format!("replace {old} => {new}\n"));
    }
    for module in parsed.siblings(&r.module) {
        out.push_str(&format!("replace {module} => {module} {}\n", r.version));
    }
    Ok(out)
}

/// The parts of an upstream go.mod a consumer module mirrors.
#[derive(Debug, Default, PartialEq)]
struct UpstreamGoMod<'a> {
    go: Option<&'a str>,
    godebug: Vec<&'a str>,
    /// Modules replaced by a `./staging/...` directory.
    staging: Vec<&'a str>,
    /// Replaces by another module version (`old => new version`), which a consumer must
    /// repeat: a dependency's replaces do not apply to the module that requires it.
    pinned: Vec<(&'a str, &'a str)>,
    /// Replaces by a directory of the module's own tree (`old => ./dir`).
    local: Vec<(&'a str, &'a str)>,
}

impl<'a> UpstreamGoMod<'a> {
    /// Modules of the same tree that upstream builds from its own directories (its
    /// `./client` for `…/client/v8`): a consumer takes them at the same version, which
    /// their tags share.
    fn siblings(&self, module: &str) -> Vec<&'a str> {
        let root = match module.rsplit_once('/') {
            Some((root, major)) if major.starts_with('v') && major[1..].parse::<u32>().is_ok() => {
                root
            }
            _ => module,
        };
        self.local
            .iter()
            .filter(|(m, dir)| {
                m.starts_with(&format!("{root}/{dir}/")) || *m == format!("{root}/{dir}")
            })
            .map(|(m, _)| *m)
            .collect()
    }

    fn parse(text: &'a str) -> Self {
        let mut parsed = Self::default();
        let mut in_godebug_block = false;
        for line in text.lines().map(str::trim) {
            let line = line.split("//").next().unwrap_or("").trim();
            if in_godebug_block {
                if line == ")" {
                    in_godebug_block = false;
                } else if !line.is_empty() {
                    parsed.godebug.push(line);
                }
                continue;
            }
            if let Some(v) = line.strip_prefix("go ") {
                parsed.go = Some(v.trim());
            } else if line == "godebug (" {
                in_godebug_block = true;
            } else if let Some(v) = line.strip_prefix("godebug ") {
                parsed.godebug.push(v.trim());
            } else if let Some((lhs, rhs)) = line.trim_start_matches("replace ").split_once("=>") {
                let (lhs, rhs) = (lhs.trim(), rhs.trim());
                if rhs.starts_with("./staging/") {
                    parsed.staging.push(lhs);
                } else if let Some(dir) = rhs.strip_prefix("./") {
                    parsed.local.push((lhs, dir));
                } else if !rhs.starts_with('.') && !rhs.starts_with('/') && rhs.contains(' ') {
                    parsed.pinned.push((lhs, rhs));
                }
            }
        }
        parsed
    }
}

/// The file name `go build -o DIR/` gives a main package: its last path element, or the
/// one before a `/vN` major-version suffix.
fn go_binary_name(package: &str) -> &str {
    let mut parts = package.rsplit('/');
    let last = parts.next().unwrap_or(package);
    let is_major_suffix =
        last.len() > 1 && last.starts_with('v') && last[1..].chars().all(|c| c.is_ascii_digit());
    if is_major_suffix {
        parts.next().unwrap_or(last)
    } else {
        last
    }
}

fn elapsed(since: Instant) -> String {
    let s = since.elapsed().as_secs();
    format!("{}m{:02}s", s / 60, s % 60)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::versions::component_of_binary;

    #[test]
    fn binary_names_follow_go_build() {
        assert_eq!(go_binary_name("k8s.io/kubernetes/cmd/kubelet"), "kubelet");
        assert_eq!(go_binary_name("go.etcd.io/etcd/server/v3"), "server");
        assert_eq!(go_binary_name("github.com/coredns/coredns"), "coredns");
        assert_eq!(go_binary_name("example.com/v"), "v");
    }

    #[test]
    fn parses_upstream_go_mod() {
        let text = "module k8s.io/kubernetes\n\ngo 1.25.0\n\ngodebug default=go1.24\n\n\
                    require (\n\tk8s.io/api v0.0.0\n)\n\nreplace (\n\tk8s.io/api => ./staging/src/k8s.io/api\n\
                    \tk8s.io/kubectl => ./staging/src/k8s.io/kubectl\n\tgithub.com/x/y => github.com/x/y v1.0.0\n)\n";
        let parsed = UpstreamGoMod::parse(text);
        assert_eq!(parsed.go, Some("1.25.0"));
        assert_eq!(parsed.godebug, vec!["default=go1.24"]);
        assert_eq!(parsed.staging, vec!["k8s.io/api", "k8s.io/kubectl"]);
        assert_eq!(
            parsed.pinned,
            vec![("github.com/x/y", "github.com/x/y v1.0.0")]
        );
    }

    #[test]
    fn parses_godebug_blocks_and_single_replaces() {
        let text = "go 1.24\ngodebug (\n\tdefault=go1.21\n\tx509sha1=1\n)\nreplace k8s.io/api => ./staging/src/k8s.io/api\n\
                    replace k8s.io/client-go => k8s.io/client-go v0.34.0\nreplace example.com/a => ../a\n\
                    // replace example.com/b => example.com/c v1.0.0\n";
        let parsed = UpstreamGoMod::parse(text);
        assert_eq!(parsed.godebug, vec!["default=go1.21", "x509sha1=1"]);
        assert_eq!(parsed.staging, vec!["k8s.io/api"]);
        // Replaces by a version are repeated; by a local directory, they cannot be.
        assert_eq!(
            parsed.pinned,
            vec![("k8s.io/client-go", "k8s.io/client-go v0.34.0")]
        );
    }

    #[test]
    fn sibling_modules_of_the_tree_are_taken_at_the_same_version() {
        let text = "replace example.com/snap/client/v8 => ./client\n\
                    replace example.com/snap => ./FORBIDDEN_DEPENDENCY\n";
        let parsed = UpstreamGoMod::parse(text);
        assert_eq!(
            parsed.siblings("example.com/snap/v8"),
            vec!["example.com/snap/client/v8"]
        );
        assert!(parsed.siblings("example.com/other/v8").is_empty());
    }

    #[test]
    fn every_component_has_a_recipe_and_its_binaries_map_back() {
        let pin = Pin {
            module: "example.com/m".into(),
            version: "v1.34.2".into(),
        };
        for c in COMPONENTS {
            let r = recipe(c, &pin).unwrap();
            assert!(!r.binaries.is_empty(), "{c}");
            for (bin, _) in &r.binaries {
                assert_eq!(component_of_binary(bin).unwrap(), c);
            }
        }
    }

    #[test]
    fn kubernetes_binaries_are_stamped_with_their_version() {
        let pin = Pin {
            module: "k8s.io/kubernetes".into(),
            version: "v1.34.12".into(),
        };
        let flags = recipe("kubernetes", &pin).unwrap().ldflags();
        assert!(flags.contains("-X k8s.io/component-base/version.gitVersion=v1.34.12"));
        assert!(flags.contains("-X k8s.io/client-go/pkg/version.gitMinor=34"));
    }
}
