# binding.gyp is kept only so that tools which expect one (npm, prebuildify, editors) find the addon.
# It holds no source list: the one real build is CMakeLists.txt, driven by cmake-js, and this target
# only delegates to it. Build with `npm run build:native` (or `npx cmake-js build`).
{
  "targets": [
    {
      "target_name": "blockprune",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_js_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["build/Release/blockprune.node"],
          "action": ["node", "scripts/install.js"]
        }
      ]
    }
  ]
}
