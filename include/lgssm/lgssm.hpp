/// @file
/// Everything of lgssm's C++ API in one include.
#pragma once

#include "lgssm/continuous.hpp"
#include "lgssm/error.hpp"
#include "lgssm/fit.hpp"
#include "lgssm/gibbs.hpp"
#include "lgssm/inference.hpp"
#include "lgssm/information.hpp"
#include "lgssm/learn.hpp"
#include "lgssm/parallel.hpp"
#include "lgssm/params.hpp"
#include "lgssm/prior.hpp"
#include "lgssm/props.hpp"
#include "lgssm/series.hpp"
#include "lgssm/stats.hpp"
#include "lgssm/streaming.hpp"
