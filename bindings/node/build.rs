//! Links the addon the way Node.js loads it (symbols resolved by the node process).

fn main() {
    napi_build::setup();
}
