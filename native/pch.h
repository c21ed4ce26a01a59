// Precompiled for every target: the torch headers cost ~25 s per translation unit otherwise.
#pragma once
#include <ATen/ATen.h>
#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <nlohmann/json.hpp>
