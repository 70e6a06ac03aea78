// Builds the addon with cargo (release; ZEROK_NODE_PROFILE=dev for a debug build that
// shares a workspace's test build) and copies it next to this file as zerok.node.
'use strict';
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const profile = process.env.ZEROK_NODE_PROFILE || 'release';
const manifest = path.join(__dirname, 'Cargo.toml');
execFileSync('cargo', ['build', '--locked', '--manifest-path', manifest, '--lib', '--profile', profile], {
  stdio: 'inherit',
});
const meta = JSON.parse(
  execFileSync('cargo', ['metadata', '--format-version', '1', '--no-deps', '--manifest-path', manifest], {
    encoding: 'utf8',
  }),
);
const dir = profile === 'dev' ? 'debug' : profile;
const file = { darwin: 'libzerok_node.dylib', win32: 'zerok_node.dll' }[process.platform] || 'libzerok_node.so';
const built = path.join(meta.target_directory, dir, file);
fs.copyFileSync(built, path.join(__dirname, 'zerok.node'));
console.log(`zerok: built ${path.join(__dirname, 'zerok.node')} (${profile})`);
