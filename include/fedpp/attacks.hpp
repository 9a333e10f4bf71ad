#pragma once
/// @file attacks.hpp
/// Convenience header: every Byzantine attack (NoAttack, SignFlip, GaussianNoise, Alie, Ipm,
/// LabelFlip, Mimic) and the type-erased AnyAttack. See docs/attacks.md.

#include "fedpp/attacks/alie.hpp"
#include "fedpp/attacks/any_attack.hpp"
#include "fedpp/attacks/gaussian.hpp"
#include "fedpp/attacks/ipm.hpp"
#include "fedpp/attacks/label_flip.hpp"
#include "fedpp/attacks/mimic.hpp"
#include "fedpp/attacks/no_attack.hpp"
#include "fedpp/attacks/sign_flip.hpp"
