//! What the watches keep of objects they cache: the fields no decision reads go, so
//! caches of many objects stay small.

use k8s_openapi::api::core::v1::Node;

/// A node without managed fields, annotations and its image list (often the largest
/// part of a real node's status).
pub fn node(node: &mut Node) {
    node.metadata.managed_fields = None;
    node.metadata.annotations = None;
    if let Some(status) = node.status.as_mut() {
        status.images = None;
    }
}
