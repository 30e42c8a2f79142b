# node-gyp build of the excise native addon: `npm run build:gyp` (node-gyp rebuild).
# The build of record is CMakeLists.txt (cmake-js, `npm run build:native`); this file builds the same
# sources (every native/**/*.cc) against the same LibTorch, for environments that only have node-gyp
# (and for node-gyp-build's fallback at `npm install`). Both write build/Release/excise.node.
#
# LibTorch is found by scripts/find-libtorch.cjs, in the same order as CMakeLists.txt:
# LIBTORCH, Torch_DIR, CMAKE_PREFIX_PATH, then Python's torch (EXCISE_PYTHON, ./.venv, python3).
{
  'targets': [
    {
      'target_name': 'excise',
      # Every native/**/*.cc (native/families/*.cc included), as CMakeLists.txt's GLOB_RECURSE.
      'sources': [
        "<!@(node -p \"require('fs').readdirSync('native',{recursive:true}).filter(f=>f.endsWith('.cc')).map(f=>'native/'+f.split(require('path').sep).join('/')).sort().join(' ')\")",
      ],
      'include_dirs': [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        'native',
        '<!@(node scripts/find-libtorch.cjs --include)',
        # The Gloo headers c10d's ProcessGroupGloo.hpp includes (LibTorch wheels lack them).
        'native/vendor/gloo',
      ],
      'defines': [
        'NAPI_VERSION=8',
        'NAPI_CPP_EXCEPTIONS',
        'NODE_ADDON_API_DISABLE_DEPRECATED',
      ],
      # node's common.gypi turns off exceptions and RTTI and picks gnu++17; LibTorch needs both on.
      'cflags!': ['-fno-exceptions', '-fno-rtti'],
      'cflags_cc!': ['-fno-exceptions', '-fno-rtti', '-std=gnu++17'],
      'cflags': ['-fexceptions'],
      'cflags_cc': [
        # C++20 where the LibTorch headers require it (2.14+), else C++17.
        '-std=<!(node scripts/find-libtorch.cjs --std)',
        '-fexceptions',
        '-frtti',
        # LibTorch 2.13's headers use C++20 bit-field initialisers, which GCC/Clang accept in C++17 mode
        # with a warning per file; CMake hides them by including LibTorch as -isystem.
        '-Wno-c++20-extensions',
        # The C++ ABI define LibTorch was built with (-D_GLIBCXX_USE_CXX11_ABI=0|1).
        '<!@(node scripts/find-libtorch.cjs --cflags)',
      ],
      'library_dirs': ['<!(node scripts/find-libtorch.cjs --lib)'],
      'ldflags': [
        # Find LibTorch's shared libraries at run time without LD_LIBRARY_PATH: the torch lib folder
        # and, for a CUDA wheel, the nvidia-* lib folders. DT_RPATH (not RUNPATH): it also serves the
        # dependencies of libtorch_cuda, which has no run path of its own.
        '-Wl,--disable-new-dtags',
        '-Wl,-rpath,<!(node scripts/find-libtorch.cjs --rpath)',
        '-Wl,-rpath-link,<!(node scripts/find-libtorch.cjs --rpath)',
      ],
      'libraries': [
        # Keep every torch library NEEDED even if no symbol is used directly (libtorch_cuda registers
        # the CUDA backend from its static initialisers; --as-needed would drop it on CUDA builds).
        '-Wl,--no-as-needed',
        '<!@(node scripts/find-libtorch.cjs --libs)',
      ],
    },
  ],
}
