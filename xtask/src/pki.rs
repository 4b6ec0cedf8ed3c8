//! The cluster's PKI (one CA as kubeadm and kind use, plus a front-proxy CA for the
//! aggregation layer) and the kubeconfig of every client. Generated once per cluster.

use std::fs;
use std::net::Ipv4Addr;
use std::path::Path;

use anyhow::{Context, Result};
use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};

use crate::layout::Layout;
use crate::network;

/// A client of the apiserver: its certificate identity and kubeconfig.
struct Client {
    /// Base name of the cert, key and kubeconfig files.
    file: &'static str,
    common_name: String,
    organization: Option<&'static str>,
    /// Loopback for control-plane components, the node address for everyone else.
    loopback: bool,
}

/// Generates everything that is missing; existing files are kept (a running cluster's
/// identities never change under it).
pub fn ensure(layout: &Layout, node_name: &str, node_ip: Ipv4Addr) -> Result<()> {
    let dir = layout.pki();
    let done = dir.join(".complete");
    if done.exists() {
        return Ok(());
    }
    fs::create_dir_all(&dir)?;

    let ca = new_ca("drover-local-ca")?;
    write_pair(&dir, "ca", &ca.pem(), &ca_key_pem(&ca))?;

    let ip = |a: Ipv4Addr| SanType::IpAddress(a.into());
    let dns = |s: &str| -> Result<SanType> { Ok(SanType::DnsName(s.try_into()?)) };
    let mut apiserver_sans = vec![
        dns("kubernetes")?,
        dns("kubernetes.default")?,
        dns("kubernetes.default.svc")?,
        dns(&format!(
            "kubernetes.default.svc.{}",
            network::CLUSTER_DOMAIN
        ))?,
        dns("localhost")?,
        dns(node_name)?,
        ip(Ipv4Addr::LOCALHOST),
        ip(node_ip),
    ];
    apiserver_sans.push(ip(network::KUBERNETES_SERVICE_IP.parse()?));
    leaf(
        &dir,
        &ca,
        "apiserver",
        "kube-apiserver",
        None,
        ExtendedKeyUsagePurpose::ServerAuth,
        apiserver_sans,
    )?;
    leaf(
        &dir,
        &ca,
        "kubelet-serving",
        &format!("system:node:{node_name}"),
        Some("system:nodes"),
        ExtendedKeyUsagePurpose::ServerAuth,
        vec![dns(node_name)?, ip(node_ip)],
    )?;
    leaf(
        &dir,
        &ca,
        "apiserver-kubelet-client",
        "kube-apiserver-kubelet-client",
        None,
        ExtendedKeyUsagePurpose::ClientAuth,
        vec![],
    )?;

    let front_proxy = new_ca("drover-front-proxy-ca")?;
    write_pair(
        &dir,
        "front-proxy-ca",
        &front_proxy.pem(),
        &ca_key_pem(&front_proxy),
    )?;
    leaf(
        &dir,
        &front_proxy,
        "front-proxy-client",
        "front-proxy-client",
        None,
        ExtendedKeyUsagePurpose::ClientAuth,
        vec![],
    )?;

    // Service-account tokens are signed with sa.key and verified with sa.pub.
    let sa = KeyPair::generate()?;
    write_private(&dir.join("sa.key"), &sa.serialize_pem())?;
    fs::write(dir.join("sa.pub"), sa.public_key_pem())?;

    let ca_pem = fs::read(dir.join("ca.crt"))?;
    for client in clients(node_name) {
        leaf(
            &dir,
            &ca,
            client.file,
            &client.common_name,
            client.organization,
            ExtendedKeyUsagePurpose::ClientAuth,
            vec![],
        )?;
        let server = if client.loopback {
            "https://127.0.0.1:6443".to_string()
        } else {
            format!("https://{node_ip}:6443")
        };
        let kubeconfig = kubeconfig(
            &server,
            &ca_pem,
            &fs::read(dir.join(format!("{}.crt", client.file)))?,
            &fs::read(dir.join(format!("{}.key", client.file)))?,
            client.file,
        );
        write_private(&layout.kubeconfig(client.file), &kubeconfig)?;
    }
    fs::write(done, "")?;
    Ok(())
}

fn clients(node_name: &str) -> Vec<Client> {
    vec![
        Client {
            file: "admin",
            common_name: "drover-admin".into(),
            organization: Some("system:masters"),
            loopback: false,
        },
        Client {
            file: "controller-manager",
            common_name: "system:kube-controller-manager".into(),
            organization: None,
            loopback: true,
        },
        Client {
            file: "scheduler",
            common_name: "system:kube-scheduler".into(),
            organization: None,
            loopback: true,
        },
        Client {
            file: "kubelet",
            common_name: format!("system:node:{node_name}"),
            organization: Some("system:nodes"),
            loopback: false,
        },
        Client {
            file: "kube-proxy",
            common_name: "system:kube-proxy".into(),
            organization: None,
            loopback: false,
        },
    ]
}

fn new_ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(name, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(CertifiedIssuer::self_signed(params, KeyPair::generate()?)?)
}

fn ca_key_pem(ca: &CertifiedIssuer<'static, KeyPair>) -> String {
    ca.key().serialize_pem()
}

fn dn(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    if let Some(o) = organization {
        dn.push(DnType::OrganizationName, o);
    }
    dn.push(DnType::CommonName, common_name);
    dn
}

fn leaf(
    dir: &Path,
    issuer: &Issuer<'_, KeyPair>,
    file: &str,
    common_name: &str,
    organization: Option<&str>,
    usage: ExtendedKeyUsagePurpose,
    sans: Vec<SanType>,
) -> Result<()> {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(common_name, organization);
    params.subject_alt_names = sans;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let key = KeyPair::generate()?;
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("signing the {file} certificate"))?;
    write_pair(dir, file, &cert.pem(), &key.serialize_pem())
}

fn write_pair(dir: &Path, name: &str, cert: &str, key: &str) -> Result<()> {
    fs::write(dir.join(format!("{name}.crt")), cert)?;
    write_private(&dir.join(format!("{name}.key")), key)
}

fn write_private(path: &Path, content: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

fn kubeconfig(server: &str, ca: &[u8], cert: &[u8], key: &[u8], user: &str) -> String {
    let b64 = |d: &[u8]| base64::engine::general_purpose::STANDARD.encode(d);
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: drover-local\n  cluster:\n    server: {server}\n    certificate-authority-data: {}\n\
         users:\n\
         - name: {user}\n  user:\n    client-certificate-data: {}\n    client-key-data: {}\n\
         contexts:\n\
         - name: drover-local\n  context:\n    cluster: drover-local\n    user: {user}\n\
         current-context: drover-local\n",
        b64(ca),
        b64(cert),
        b64(key)
    )
}
