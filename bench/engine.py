"""Screening engine alone: applications per second per core, per seed trial, beside hand-written Python.

    python bench/engine.py [--count 2000] [--rounds 15] [--seed 20261101] [--fuzz 20000] [--trial ID]...

For each seed trial (services/trials/seed_data/*.criteria.yaml) the criteria are compiled once, and `--count`
applicants are drawn from a fixed seed in the vocabulary of ../shared/contract/observations.md, stored as
intake stores them (validated by services.schemas.observations.Applicant, canonical units): about 60%
complete and meant to be eligible (the trial's baseline with varied ages, grades, labs and dates), 20% made
ineligible (or sent to review) on one or two criteria, 15% with one to three observations the criteria read
left out (so outcomes are unknown; the consent date too, which moves the reference date to the submission
date), 5% both. Two functions are then timed over the same applicants, one call per applicant, single
process and thread (one core), garbage collector on, rounds interleaved so both see the same machine load:

- engine: `CompiledCriteria.evaluate(observations, submitted_on)`, what the screening service calls: the
  environment (reference date, age), every criterion's closure, one CriterionResult per criterion with its
  outcome, missing variables and reviewer notes, and the decision;
- hand-written (the reference): one plain Python function per trial that implements the same criteria
  directly, if/else over the observation dict with the same three-valued handling (absent -> unknown),
  returning the decision and each criterion's outcome (not the missing names, notes or texts).

Before timing, every applicant of the timed set, and `--fuzz` more per trial whose read observations are
randomised around every threshold and window edge (or left out), must get the same decision and the same
outcome on every criterion from both; the run stops on the first disagreement. A sample is one pass over
the set, repeated so that it lasts at least 0.1 s; rates are from the best and the median of `--rounds`
samples. Target (the issue): the engine at least 25% of the hand-written speed, judged on the best samples.
Exit status: 0 when every trial meets it, 1 when one does not, 2 on a disagreement.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import platform
import random
import statistics
import sys
import time
from calendar import monthrange
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from services.eligibility import CompiledCriteria
from services.schemas.observations import Applicant
from services.schemas.vocabulary import VOCABULARY
from services.trials.criteria import bundled_document, compile_document
from tests.support.applicants import eligible_applicant

SUBMITTED = date(2026, 11, 1)
CONSENT = "2026-10-01"
TARGET = 0.25
SAMPLE_SECONDS = 0.1

Obs = Mapping[str, Any]
Answer = tuple[str, tuple[str, ...]]
J = "judgment"  # a criterion only the investigator can decide: no rule, outcome `judgment`
OUTCOME = {True: "met", False: "not_met", None: "unknown", J: J}
FOUR_WEEKS = timedelta(weeks=4)
FOURTEEN_DAYS = timedelta(days=14)
THIRTEEN_DAYS = timedelta(days=13)
DIABETIC = ("type1", "type2")


# ---------------------------------------------------------------------------------------------------------
# The reference: each trial's criteria written out by hand. A value is True, False or None (unknown); for a
# boolean observation read as `eq: true` the observation itself is that value. Kleene AND of a tuple t is
# `False if False in t else None if None in t else True`, OR the same with True and False swapped.
# ---------------------------------------------------------------------------------------------------------


def _months_back(day: date, months: int) -> date:
    """`day` moved back by calendar months, clamped to the month's last day (31 May - 3 months = 28 Feb)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def _decision(inclusions: tuple[Any, ...], exclusions: tuple[Any, ...]) -> str:
    if False in inclusions or True in exclusions:
        return "ineligible"
    if None in inclusions or None in exclusions:
        return "needs_review"
    return "eligible"


def hand_nct06359912(obs: Obs, submitted: date) -> Answer:
    """NCT06359912: I1-I7, E1-E18 (E18 judgment)."""
    g = obs.get
    v = g("consent_date")
    ref = submitted if v is None else date.fromisoformat(v)
    v = g("birth_date")
    if v is None:
        age = g("age_years")
    else:
        born = date.fromisoformat(v)
        age = ref.year - born.year - ((ref.month, ref.day) < (born.month, born.day))
    # I1 age 18-80
    i1 = None if age is None else 18 <= age <= 80
    # I2 CLI; no revascularization, or a failed endovascular one > 1 month ago; Rutherford 3-5; a symptom
    rev = g("revascularization")
    if rev is None:
        prior = None
    elif rev == "none":
        prior = True
    elif rev == "endovascular":
        v = g("revascularization_relieved_symptoms")
        w = g("revascularization_date")
        t = (
            None if v is None else not v,
            None if w is None else date.fromisoformat(w) < _months_back(ref, 1),
        )
        prior = False if False in t else None if None in t else True
    else:
        prior = False
    v = g("rutherford_grade")
    grade = None if v is None else v in (3, 4, 5)
    v = g("abi")
    t = (g("severe_claudication"), g("rest_pain"), None if v is None else v <= 0.60)
    symptom = True if True in t else None if None in t else False
    t = (g("cli_diagnosed"), prior, grade, symptom)
    i2 = False if False in t else None if None in t else True
    # I3 stenosis >= 70% on DSA/CTA/MRA/ultrasound within 1 month
    v = g("infrainguinal_stenosis_pct")
    w = g("infrainguinal_imaging")
    x = g("infrainguinal_imaging_date")
    t = (
        None if v is None else v >= 70,
        None if w is None else w in ("dsa", "cta", "mra", "ultrasound"),
        None if x is None else date.fromisoformat(x) >= _months_back(ref, 1),
    )
    i3 = False if False in t else None if None in t else True
    # I4 Wagner <= 4
    v = g("wagner_grade")
    i4 = None if v is None else v <= 4
    # I5 rest pain -> onset more than 14 days ago
    pain = g("rest_pain")
    if pain is False:
        i5 = True
    else:
        v = g("rest_pain_onset_date")
        long = None if v is None else date.fromisoformat(v) < ref - FOURTEEN_DAYS
        i5 = long if pain else (True if long else None)
    # I6 childbearing potential -> contraception
    fertile = g("childbearing_potential")
    if fertile is False:
        i6 = True
    else:
        v = g("contraception_agreed")
        i6 = v if fertile else (True if v else None)
    # I7 consent and follow-up
    t = (g("consent_signed"), g("follow_up_agreed"))
    i7 = False if False in t else None if None in t else True
    # E1 prior cell therapy
    e1 = g("prior_cell_therapy")
    # E2 other trial within 4 weeks
    v = g("other_trial")
    if v is False:
        e2 = False
    else:
        w = g("other_trial_date")
        t = (v, None if w is None else date.fromisoformat(w) >= ref - FOUR_WEEKS)
        e2 = False if False in t else None if None in t else True
    # E3 iliac stenosis >= 75%
    v = g("iliac_stenosis_pct")
    e3 = None if v is None else v >= 75
    # E4 uncontrolled limb or systemic infection; a severe limb infection goes to review
    limb = g("limb_infection")
    v = g("systemic_infection")
    t = (
        None if limb is None else limb == "uncontrolled",
        None if v is None else v == "uncontrolled",
        None if limb is None or limb == "severe" else False,
    )
    e4 = True if True in t else None if None in t else False
    # E5 diabetic proliferative retinopathy
    v = g("diabetes")
    w = g("diabetic_retinopathy_grade")
    t = (None if v is None else v in DIABETIC, None if w is None else w >= 4)
    e5 = False if False in t else None if None in t else True
    # E6 acute limb ischemia now or within 14 days
    v = g("acute_limb_ischemia")
    if v is False:
        e6 = False
    else:
        w = g("acute_limb_ischemia_date")
        t = (
            g("acute_limb_ischemia_current"),
            None if w is None else date.fromisoformat(w) >= ref - FOURTEEN_DAYS,
        )
        recent = True if True in t else None if None in t else False
        t = (v, recent)
        e6 = False if False in t else None if None in t else True
    # E7 uncontrolled hypertension
    t = (g("hypertension"), g("hypertension_uncontrolled"))
    e7 = False if False in t else None if None in t else True
    # E8 stroke, heart failure, unstable angina, infarction or severe arrhythmia, ever
    t = (
        g("stroke"),
        g("heart_failure"),
        g("unstable_angina"),
        g("myocardial_infarction"),
        g("severe_arrhythmia"),
    )
    e8 = True if True in t else None if None in t else False
    # E9 severe liver, kidney, coagulation disorder or anaemia
    v = g("liver_disease")
    t = (
        None if v is None else v in ("severe", "decompensated"),
        g("kidney_disease_severe"),
        g("coagulation_disorder_severe"),
        g("anemia_severe"),
    )
    e9 = True if True in t else None if None in t else False
    # E10 severe respiratory disease
    e10 = g("severe_respiratory_disease")
    # E11 serology
    t = (g("hbsag_positive"), g("hcv_antibody_positive"), g("syphilis_positive"), g("hiv_positive"))
    e11 = True if True in t else None if None in t else False
    # E12 malignancy, active or within 5 years
    v = g("malignancy")
    if v is False:
        e12 = False
    else:
        w = g("malignancy_date")
        t = (g("malignancy_active"), None if w is None else date.fromisoformat(w) >= _months_back(ref, 60))
        recent = True if True in t else None if None in t else False
        t = (v, recent)
        e12 = False if False in t else None if None in t else True
    # E13 mental illness, cognitive impairment, life expectancy < 12 months
    v = g("life_expectancy_months")
    t = (g("mental_illness"), g("cognitive_impairment"), None if v is None else v < 12)
    e13 = True if True in t else None if None in t else False
    # E14 immunodeficiency
    e14 = g("immunodeficiency")
    # E15 pregnant or lactating woman
    v = g("sex")
    t = (g("pregnant"), g("lactating"))
    either = True if True in t else None if None in t else False
    t = (None if v is None else v == "female", either)
    e15 = False if False in t else None if None in t else True
    # E16 allergy to more than 2 drugs
    v = g("drug_allergy_count")
    e16 = None if v is None else v > 2
    # E17 substance abuse
    e17 = g("substance_abuse")
    inclusions = (i1, i2, i3, i4, i5, i6, i7)
    exclusions = (e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17)
    outcomes = tuple(map(OUTCOME.__getitem__, (*inclusions, *exclusions, J)))
    return _decision(inclusions, exclusions), outcomes


def hand_nct03239535(obs: Obs, submitted: date) -> Answer:
    """NCT03239535: I1-I11, E1-E22 (E13 judgment)."""
    g = obs.get
    v = g("consent_date")
    ref = submitted if v is None else date.fromisoformat(v)
    v = g("birth_date")
    if v is None:
        age = g("age_years")
    else:
        born = date.fromisoformat(v)
        age = ref.year - born.year - ((ref.month, ref.day) < (born.month, born.day))
    # I1 age 18-80, Caucasian origin (race unknown goes to review)
    v = g("race")
    t = (None if age is None else 18 <= age <= 80, None if v is None or v == "unknown" else v == "white")
    i1 = False if False in t else None if None in t else True
    # I2 atherosclerosis or diabetes
    diabetes = g("diabetes")
    t = (g("atherosclerosis"), None if diabetes is None else diabetes in DIABETIC)
    i2 = True if True in t else None if None in t else False
    # I3 CLI, Fontaine 3-4 or Rutherford 4-6
    v = g("fontaine_stage")
    w = g("rutherford_grade")
    t = (None if v is None else 3 <= v <= 4, None if w is None else 4 <= w <= 6)
    staged = True if True in t else None if None in t else False
    t = (g("cli_diagnosed"), staged)
    i3 = False if False in t else None if None in t else True
    # I4 symptoms remain after surgical or endovascular treatment, conservative therapy ongoing
    v = g("revascularization")
    w = g("revascularization_relieved_symptoms")
    t = (
        None if v is None else v in ("surgical", "endovascular"),
        None if w is None else not w,
        g("conservative_therapy_ongoing"),
    )
    i4 = False if False in t else None if None in t else True
    # I5 not (emergency indication and major amputation)
    v = g("amputation_needed")
    t = (g("emergency_amputation_indicated"), None if v is None else v == "major")
    both = False if False in t else None if None in t else True
    i5 = None if both is None else not both
    # I6 reconstruction planned with a questionable outcome
    i6 = g("revascularization_outcome_questionable")
    # I7 ABI <= 0.5 or ankle pressure <= 70
    v = g("abi")
    w = g("ankle_systolic_pressure_mmhg")
    t = (None if v is None else v <= 0.5, None if w is None else w <= 70)
    i7 = True if True in t else None if None in t else False
    # I8 type 2 diabetes -> treated and HbA1c <= 8.5
    type2 = None if diabetes is None else diabetes == "type2"
    if type2 is False:
        i8 = True
    else:
        v = g("hba1c_pct")
        t = (g("diabetes_treated"), None if v is None else v <= 8.5)
        then = False if False in t else None if None in t else True
        i8 = then if type2 else (True if then else None)
    # I9 hypertension -> treated; untreated with controlled pressure goes to review
    v = g("hypertension")
    if v is False:
        i9 = True
    else:
        treated = g("hypertension_treated")
        if treated is True:
            then = True
        elif treated is None:
            then = None
        else:
            then = False if g("hypertension_uncontrolled") is True else None
        i9 = then if v else (True if then else None)
    # I10 creatinine, bilirubin, ALT, AST <= ULN; between 1 and 2 x ULN goes to review
    cr = g("creatinine_x_uln")
    bili = g("bilirubin_x_uln")
    alt = g("alt_x_uln")
    ast = g("ast_x_uln")
    t = (
        None if cr is None or 1.0 < cr < 2.0 else cr <= 1.0,
        None if bili is None or 1.0 < bili < 2.0 else bili <= 1.0,
        None if alt is None or 1.0 < alt < 2.0 else alt <= 1.0,
        None if ast is None or 1.0 < ast < 2.0 else ast <= 1.0,
    )
    i10 = False if False in t else None if None in t else True
    # I11 consent and follow-up
    signed = g("consent_signed")
    t = (signed, g("follow_up_agreed"))
    i11 = False if False in t else None if None in t else True
    # E1 wet gangrene or any limb infection
    gangrene = g("gangrene")
    v = g("limb_infection")
    t = (
        None if gangrene is None else gangrene == "wet",
        None if v is None else v in ("controlled", "uncontrolled", "severe"),
    )
    e1 = True if True in t else None if None in t else False
    # E2 extensive dry gangrene
    e2 = None if gangrene is None else gangrene == "dry_extensive"
    # E3 acute limb ischemia now
    t = (g("acute_limb_ischemia"), g("acute_limb_ischemia_current"))
    e3 = False if False in t else None if None in t else True
    # E4 life expectancy < 6 months
    v = g("life_expectancy_months")
    e4 = None if v is None else v < 6
    # E5 active malignancy or bone marrow disease
    t = (g("malignancy"), g("malignancy_active"))
    active = False if False in t else None if None in t else True
    t = (active, g("bone_marrow_disease"))
    e5 = True if True in t else None if None in t else False
    # E6 bleeding
    e6 = g("bleeding_active")
    # E7 any other infection
    v = g("systemic_infection")
    e7 = None if v is None else v in ("controlled", "uncontrolled")
    # E8 creatinine >= 2 x ULN
    e8 = None if cr is None else cr >= 2.0
    # E9 bilirubin, ALT or AST >= 2 x ULN
    t = (
        None if bili is None else bili >= 2.0,
        None if alt is None else alt >= 2.0,
        None if ast is None else ast >= 2.0,
    )
    e9 = True if True in t else None if None in t else False
    # E10 platelets < 50, WBC < 4, immunosuppressive therapy
    v = g("platelets_10e9_l")
    w = g("wbc_10e9_l")
    t = (None if v is None else v < 50, None if w is None else w < 4, g("immunosuppressive_therapy"))
    e10 = True if True in t else None if None in t else False
    # E11 neurological deficit; E12 gait disturbance of another cause
    e11 = g("neurological_deficit_pronounced")
    e12 = g("gait_disturbance_other_cause")
    # E14 major amputation needed
    v = g("amputation_needed")
    e14 = None if v is None else v == "major"
    # E15 type 1 diabetes
    e15 = None if diabetes is None else diabetes == "type1"
    # E16 respiratory complications or LVEF < 25%
    v = g("lvef_pct")
    t = (g("severe_respiratory_disease"), None if v is None else v < 25)
    e16 = True if True in t else None if None in t else False
    # E17 stroke or infarction within 3 months
    v = g("stroke")
    if v is False:
        stroke = False
    else:
        w = g("stroke_date")
        t = (v, None if w is None else date.fromisoformat(w) >= _months_back(ref, 3))
        stroke = False if False in t else None if None in t else True
    v = g("myocardial_infarction")
    if v is False:
        infarction = False
    else:
        w = g("myocardial_infarction_date")
        t = (v, None if w is None else date.fromisoformat(w) >= _months_back(ref, 3))
        infarction = False if False in t else None if None in t else True
    t = (stroke, infarction)
    e17 = True if True in t else None if None in t else False
    # E18 angiography contraindicated
    e18 = g("angiography_contraindicated")
    # E19 substance abuse within 3 months goes to review
    v = g("substance_abuse")
    if v is False:
        e19 = False
    else:
        w = g("substance_abuse_date")
        t = (v, None if w is None else date.fromisoformat(w) >= _months_back(ref, 3))
        e19 = False if False in t else None
    # E20 pregnant or lactating woman
    v = g("sex")
    t = (g("pregnant"), g("lactating"))
    either = True if True in t else None if None in t else False
    t = (None if v is None else v == "female", either)
    e20 = False if False in t else None if None in t else True
    # E21 HIV, HCV, HBV
    t = (g("hiv_positive"), g("hcv_antibody_positive"), g("hbsag_positive"), g("hbv_dna_detectable"))
    e21 = True if True in t else None if None in t else False
    # E22 consent not signed
    e22 = None if signed is None else not signed
    inclusions = (i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11)
    exclusions = (
        e1,
        e2,
        e3,
        e4,
        e5,
        e6,
        e7,
        e8,
        e9,
        e10,
        e11,
        e12,
        e14,
        e15,
        e16,
        e17,
        e18,
        e19,
        e20,
        e21,
        e22,
    )
    every = (*inclusions, *exclusions[:12], J, *exclusions[12:])  # E13, the judgment, between E12 and E14
    outcomes = tuple(map(OUTCOME.__getitem__, every))
    return _decision(inclusions, exclusions), outcomes


def hand_nl003(obs: Obs, submitted: date) -> Answer:
    """NL003-CLI-III-2: I1-I6, E1-E19 with E14.a and E17.a (E3, E14.a, E17 judgment)."""
    g = obs.get
    v = g("consent_date")
    ref = submitted if v is None else date.fromisoformat(v)
    v = g("birth_date")
    if v is None:
        age = g("age_years")
    else:
        born = date.fromisoformat(v)
        age = ref.year - born.year - ((ref.month, ref.day) < (born.month, born.day))
    # I1 age 20-80
    i1 = None if age is None else 20 <= age <= 80
    # I2 CLI, Rutherford 5, a haemodynamic sign, stenosis >= 70% on DSA/CTA within 3 months
    v = g("ankle_systolic_pressure_mmhg")
    w = g("abi")
    x = g("tcpo2_mmhg")
    t = (None if v is None else v <= 70, None if w is None else w <= 0.5, None if x is None else x < 30)
    sign = True if True in t else None if None in t else False
    v = g("rutherford_grade")
    w = g("infrainguinal_stenosis_pct")
    x = g("infrainguinal_imaging")
    y = g("infrainguinal_imaging_date")
    t = (
        g("cli_diagnosed"),
        None if v is None else v == 5,
        sign,
        None if w is None else w >= 70,
        None if x is None else x in ("dsa", "cta"),
        None if y is None else date.fromisoformat(y) >= _months_back(ref, 3),
    )
    i2 = False if False in t else None if None in t else True
    # I3 ulcer for 14 days or more, <= 10 cm2, 1-3 ulcers, no bone exposed, at most toe gangrene
    v = g("ulcer_onset_date")
    w = g("ulcer_largest_area_cm2")
    x = g("ulcer_count")
    exposed = g("ulcer_exposes_bone_or_joint")
    y = g("gangrene")
    t = (
        None if v is None else date.fromisoformat(v) < ref - THIRTEEN_DAYS,
        None if w is None else w <= 10,
        None if x is None else 1 <= x <= 3,
        None if exposed is None else not exposed,
        None if y is None else y in ("none", "dry_toe"),
    )
    i3 = False if False in t else None if None in t else True
    # I4 follow-up agreed, diary compliance >= 70%
    v = g("diary_compliance_pct")
    t = (g("follow_up_agreed"), None if v is None else v >= 70)
    i4 = False if False in t else None if None in t else True
    # I5 childbearing potential -> contraception; woman of childbearing potential -> negative pregnancy test
    fertile = g("childbearing_potential")
    if fertile is False:
        contraception = True
        tested = True
    else:
        v = g("contraception_agreed")
        contraception = v if fertile else (True if v else None)
        w = g("sex")
        t = (None if w is None else w == "female", fertile)
        woman = False if False in t else None if None in t else True
        if woman is False:
            tested = True
        else:
            x = g("pregnancy_test_negative")
            tested = x if woman else (True if x else None)
    t = (contraception, tested)
    i5 = False if False in t else None if None in t else True
    # I6 consent signed
    i6 = g("consent_signed")
    # E1 acute limb ischemia now
    t = (g("acute_limb_ischemia"), g("acute_limb_ischemia_current"))
    e1 = False if False in t else None if None in t else True
    # E2 revascularization, sympathectomy or amputation within 4 weeks
    v = g("revascularization")
    if v is None or v in ("surgical", "endovascular"):
        w = g("revascularization_date")
        t = (
            None if v is None else True,
            None if w is None else date.fromisoformat(w) >= ref - FOUR_WEEKS,
        )
        revascularized = False if False in t else None if None in t else True
    else:
        revascularized = False
    v = g("sympathectomy_or_amputation")
    if v is False:
        operated = False
    else:
        w = g("sympathectomy_or_amputation_date")
        t = (v, None if w is None else date.fromisoformat(w) >= ref - FOUR_WEEKS)
        operated = False if False in t else None if None in t else True
    t = (revascularized, operated)
    e2 = True if True in t else None if None in t else False
    # E4 iliac stenosis >= 70%
    v = g("iliac_stenosis_pct")
    e4 = None if v is None else v >= 70
    # E5 severe limb infection or exposed bone; an uncontrolled one goes to review
    v = g("limb_infection")
    t = (
        None if v is None else v == "severe",
        exposed,
        None if v is None or v == "uncontrolled" else False,
    )
    e5 = True if True in t else None if None in t else False
    # E6 heart failure NYHA >= 3
    v = g("nyha_class")
    t = (g("heart_failure"), None if v is None else v >= 3)
    e6 = False if False in t else None if None in t else True
    # E7 stroke, infarction or unstable angina within 3 months
    v = g("stroke")
    if v is False:
        stroke = False
    else:
        w = g("stroke_date")
        t = (v, None if w is None else date.fromisoformat(w) >= _months_back(ref, 3))
        stroke = False if False in t else None if None in t else True
    v = g("myocardial_infarction")
    if v is False:
        infarction = False
    else:
        w = g("myocardial_infarction_date")
        t = (v, None if w is None else date.fromisoformat(w) >= _months_back(ref, 3))
        infarction = False if False in t else None if None in t else True
    v = g("unstable_angina")
    if v is False:
        angina = False
    else:
        w = g("unstable_angina_date")
        t = (v, None if w is None else date.fromisoformat(w) >= _months_back(ref, 3))
        angina = False if False in t else None if None in t else True
    t = (stroke, infarction, angina)
    e7 = True if True in t else None if None in t else False
    # E8 refractory hypertension
    v = g("antihypertensive_drug_count")
    w = g("systolic_bp_mmhg")
    x = g("diastolic_bp_mmhg")
    t = (None if w is None else w >= 180, None if x is None else x >= 110)
    high = True if True in t else None if None in t else False
    t = (g("hypertension"), None if v is None else v >= 3, high)
    e8 = False if False in t else None if None in t else True
    # E9 diabetic proliferative retinopathy, or no retinopathy exam
    diabetic = g("diabetes")
    diabetic = None if diabetic is None else diabetic in DIABETIC
    v = g("diabetic_retinopathy_grade")
    t = (diabetic, None if v is None else v >= 4)
    proliferative = False if False in t else None if None in t else True
    v = g("retinopathy_exam_available")
    t = (proliferative, None if v is None else not v)
    e9 = True if True in t else None if None in t else False
    # E10 cannot describe symptoms
    v = g("can_describe_symptoms")
    e10 = None if v is None else not v
    # E11 decompensated liver disease
    v = g("liver_disease")
    e11 = None if v is None else v == "decompensated"
    # E12 immunosuppressants or chemoradiotherapy
    t = (g("immunosuppressive_therapy"), g("chemoradiotherapy_current"))
    e12 = True if True in t else None if None in t else False
    # E13 HIV, HCV; HBsAg positive goes to review
    t = (g("hiv_positive"), g("hcv_antibody_positive"), False if g("hbsag_positive") is False else None)
    e13 = True if True in t else None if None in t else False
    # E14 laboratory limits
    hb = g("hemoglobin_g_l")
    wbc = g("wbc_10e9_l")
    plt = g("platelets_10e9_l")
    ast = g("ast_x_uln")
    alt = g("alt_x_uln")
    cr = g("creatinine_x_uln")
    t = (
        None if hb is None else hb < 80,
        None if wbc is None else wbc < 3.0,
        None if plt is None else plt < 75,
        None if ast is None else ast > 3,
        None if alt is None else alt > 3,
        None if cr is None else cr > 3,
    )
    e14 = True if True in t else None if None in t else False
    # E15 diabetic with HbA1c > 10%
    v = g("hba1c_pct")
    t = (diabetic, None if v is None else v > 10)
    e15 = False if False in t else None if None in t else True
    # E16 malignancy or abnormal tumour screen
    t = (g("malignancy"), g("tumor_screen_abnormal"))
    e16 = True if True in t else None if None in t else False
    # E17.a life expectancy < 12 months
    v = g("life_expectancy_months")
    e17a = None if v is None else v < 12
    # E18 more than 14 units a week or substance abuse
    v = g("alcohol_units_per_week")
    t = (None if v is None else v > 14, g("substance_abuse"))
    e18 = True if True in t else None if None in t else False
    # E19 other trial within 3 months
    v = g("other_trial")
    if v is False:
        e19 = False
    else:
        w = g("other_trial_date")
        t = (v, None if w is None else date.fromisoformat(w) >= _months_back(ref, 3))
        e19 = False if False in t else None if None in t else True
    inclusions = (i1, i2, i3, i4, i5, i6)
    exclusions = (e1, e2, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17a, e18, e19)
    every = (*inclusions, e1, e2, J, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, J,
             e15, e16, J, e17a, e18, e19)  # fmt: skip
    outcomes = tuple(map(OUTCOME.__getitem__, every))
    return _decision(inclusions, exclusions), outcomes


def hand_admscc(obs: Obs, submitted: date) -> Answer:
    """ADMSCC-CLI-P1-2A: I1 CLI, I2 review for every applicant with CLI, I3 and E1 judgment."""
    cli = obs.get("cli_diagnosed")
    i2 = False if cli is False else None
    inclusions = (cli, i2)
    return _decision(inclusions, ()), (OUTCOME[cli], OUTCOME[i2], J, J)


# ---------------------------------------------------------------------------------------------------------
# Applicants: per trial an eligible baseline, eligible variations, failures (ineligible or to review), and
# which observations may be left out.
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Trial:
    trial_id: str
    hand: Callable[[Obs, date], Answer]
    baseline: dict[str, Any]
    ages: tuple[int, int]  # ages the baseline may take, inclusive
    variations: tuple[tuple[dict[str, Any], ...], ...]  # per group, alternatives that keep it eligible
    failures: tuple[dict[str, Any], ...]  # each makes a criterion fail, or go to review on purpose


def _days_before_consent(days: int) -> str:
    return (date.fromisoformat(CONSENT) - timedelta(days=days)).isoformat()


def _choices(name: str, *values: Any) -> tuple[dict[str, Any], ...]:
    return tuple({name: value} for value in values)


NCT06359912 = Trial(
    "NCT06359912",
    hand_nct06359912,
    {k: v for k, v in eligible_applicant("B").items() if k != "screening_id"},
    (19, 79),
    (
        _choices("sex", "female", "male"),
        _choices("rutherford_grade", 3, 4, 5),
        _choices("wagner_grade", 0, 1, 2, 3, 4),
        _choices("abi", 0.3, 0.45, 0.6, 0.72, 0.9),
        _choices("infrainguinal_stenosis_pct", 70, 80, 95, 100),
        _choices("infrainguinal_imaging", "dsa", "cta", "mra", "ultrasound"),
        _choices("infrainguinal_imaging_date", *(_days_before_consent(d) for d in (0, 3, 11, 20, 29))),
        _choices("rest_pain_onset_date", *(_days_before_consent(d) for d in (15, 40, 90, 200))),
        _choices("iliac_stenosis_pct", 0, 20, 45, 60),
        _choices("limb_infection", "none", "controlled"),
        _choices("systemic_infection", "none", "controlled"),
        _choices("hemoglobin_g_l", 98.0, 121.0, 135.5, 150.0),
        _choices("drug_allergy_count", 0, 1, 2),
        _choices("life_expectancy_months", 24, 60, 120),
        (
            {"diabetes": "type2", "diabetic_retinopathy_grade": 1},
            {"diabetes": "type1", "diabetic_retinopathy_grade": 3},
        ),
        ({"hypertension": True, "hypertension_uncontrolled": False},),
        (
            {
                "revascularization": "endovascular",
                "revascularization_relieved_symptoms": False,
                "revascularization_date": "2026-05-12",
            },
        ),
        ({"other_trial": True, "other_trial_date": "2025-06-01"},),
        ({"childbearing_potential": True, "contraception_agreed": True},),
        ({"malignancy": True, "malignancy_active": False, "malignancy_date": "2016-03-01"},),
        (
            {
                "acute_limb_ischemia": True,
                "acute_limb_ischemia_current": False,
                "acute_limb_ischemia_date": "2026-02-01",
            },
        ),
        ({"rest_pain": False, "severe_claudication": True, "rutherford_grade": 3},),
    ),
    (
        {"birth_date": "1941-05-01"},
        {"cli_diagnosed": False},
        {"revascularization": "surgical", "revascularization_date": "2025-11-03"},
        {
            "revascularization": "endovascular",
            "revascularization_relieved_symptoms": False,
            "revascularization_date": _days_before_consent(10),
        },
        {"rutherford_grade": 6},
        {"rest_pain": False, "severe_claudication": False, "abi": 0.8},
        {"infrainguinal_stenosis_pct": 55},
        {"infrainguinal_imaging_date": "2026-07-14"},
        {"wagner_grade": 5},
        {"rest_pain_onset_date": _days_before_consent(9)},
        {"childbearing_potential": True, "contraception_agreed": False},
        {"consent_signed": False},
        {"follow_up_agreed": False},
        {"prior_cell_therapy": True},
        {"other_trial": True, "other_trial_date": _days_before_consent(12)},
        {"iliac_stenosis_pct": 80},
        {"limb_infection": "uncontrolled"},
        {"limb_infection": "severe"},
        {"systemic_infection": "uncontrolled"},
        {"diabetes": "type2", "diabetic_retinopathy_grade": 4},
        {"acute_limb_ischemia": True, "acute_limb_ischemia_current": True},
        {"hypertension": True, "hypertension_uncontrolled": True},
        {"stroke": True},
        {"myocardial_infarction": True},
        {"severe_arrhythmia": True},
        {"liver_disease": "severe"},
        {"kidney_disease_severe": True},
        {"severe_respiratory_disease": True},
        {"hcv_antibody_positive": True},
        {"malignancy": True, "malignancy_active": True},
        {"life_expectancy_months": 8},
        {"cognitive_impairment": True},
        {"immunodeficiency": True},
        {"sex": "female", "lactating": True},
        {"drug_allergy_count": 4},
        {"substance_abuse": True},
    ),
)

# A 62-year-old white woman with type 2 diabetes and treated hypertension, in rest pain after a failed
# angioplasty and planned for a bypass with poor runoff (as tests/unit/test_nct03239535_criteria.py).
NCT03239535 = Trial(
    "NCT03239535",
    hand_nct03239535,
    dict.fromkeys(
        [
            *["bone_marrow_disease", "bleeding_active", "immunosuppressive_therapy"],
            *[
                "neurological_deficit_pronounced",
                "gait_disturbance_other_cause",
                "severe_respiratory_disease",
            ],
            *["angiography_contraindicated", "pregnant", "lactating"],
            *["hiv_positive", "hcv_antibody_positive", "hbsag_positive", "hbv_dna_detectable"],
        ],
        False,
    )
    | {
        "consent_date": CONSENT,
        "birth_date": "1964-03-15",
        "race": "white",
        "sex": "female",
        "atherosclerosis": True,
        "diabetes": "type2",
        "cli_diagnosed": True,
        "fontaine_stage": 4,
        "rutherford_grade": 5,
        "revascularization": "endovascular",
        "revascularization_relieved_symptoms": False,
        "revascularization_date": "2026-04-20",
        "conservative_therapy_ongoing": True,
        "emergency_amputation_indicated": False,
        "amputation_needed": "minor",
        "revascularization_outcome_questionable": True,
        "abi": 0.45,
        "ankle_systolic_pressure_mmhg": 75.0,
        "diabetes_treated": True,
        "hba1c_pct": 7.2,
        "hypertension": True,
        "hypertension_treated": True,
        "hypertension_uncontrolled": False,
        "creatinine_x_uln": 0.9,
        "bilirubin_x_uln": 0.6,
        "alt_x_uln": 0.8,
        "ast_x_uln": 0.7,
        "consent_signed": True,
        "follow_up_agreed": True,
        "gangrene": "dry_toe",
        "limb_infection": "none",
        "systemic_infection": "none",
        "acute_limb_ischemia": True,
        "acute_limb_ischemia_current": False,
        "life_expectancy_months": 24,
        "malignancy": True,
        "malignancy_active": False,
        "platelets_10e9_l": 220.0,
        "wbc_10e9_l": 6.5,
        "lvef_pct": 55.0,
        "stroke": True,
        "stroke_date": "2025-02-10",
        "myocardial_infarction": True,
        "myocardial_infarction_date": "2023-05-01",
        "substance_abuse": True,
        "substance_abuse_date": "2025-12-01",
    },
    (19, 79),
    (
        _choices("sex", "female", "male"),
        _choices("fontaine_stage", 3, 4),
        _choices("rutherford_grade", 4, 5, 6),
        _choices("revascularization", "surgical", "endovascular"),
        _choices("abi", 0.2, 0.35, 0.5),
        _choices("ankle_systolic_pressure_mmhg", 40.0, 75.0, 110.0),
        _choices("hba1c_pct", 6.1, 7.9, 8.5),
        _choices("creatinine_x_uln", 0.5, 0.8, 1.0),
        _choices("bilirubin_x_uln", 0.3, 0.9),
        _choices("alt_x_uln", 0.4, 1.0),
        _choices("ast_x_uln", 0.5, 0.95),
        _choices("gangrene", "none", "dry_toe"),
        _choices("amputation_needed", "none", "minor"),
        _choices("platelets_10e9_l", 50.0, 180.0, 390.0),
        _choices("wbc_10e9_l", 4.0, 7.2, 10.4),
        _choices("lvef_pct", 25.0, 40.0, 62.0),
        _choices("life_expectancy_months", 6, 36, 100),
        ({"diabetes": "none"}, {"diabetes": "none", "diabetes_treated": False}),
        ({"hypertension": False}, {"hypertension": False, "hypertension_treated": False}),
        ({"stroke": False}, {"stroke_date": "2026-06-30"}),
        ({"myocardial_infarction": False},),
        ({"substance_abuse": False}, {"substance_abuse_date": "2026-06-30"}),
        ({"malignancy": False},),
        ({"acute_limb_ischemia": False},),
    ),
    (
        {"birth_date": "2010-01-01"},
        {"race": "asian"},
        {"race": "unknown"},
        {"atherosclerosis": False, "diabetes": "none"},
        {"cli_diagnosed": False},
        {"fontaine_stage": 2, "rutherford_grade": 3},
        {"revascularization": "none"},
        {"revascularization_relieved_symptoms": True},
        {"conservative_therapy_ongoing": False},
        {"emergency_amputation_indicated": True, "amputation_needed": "major"},
        {"revascularization_outcome_questionable": False},
        {"abi": 0.7, "ankle_systolic_pressure_mmhg": 90.0},
        {"hba1c_pct": 9.4},
        {"diabetes_treated": False},
        {"hypertension_treated": False, "hypertension_uncontrolled": True},
        {"hypertension_treated": False, "hypertension_uncontrolled": False},
        {"creatinine_x_uln": 1.4},
        {"alt_x_uln": 2.5},
        {"bilirubin_x_uln": 1.2},
        {"gangrene": "wet"},
        {"limb_infection": "controlled"},
        {"gangrene": "dry_extensive"},
        {"acute_limb_ischemia_current": True},
        {"life_expectancy_months": 4},
        {"malignancy_active": True},
        {"bone_marrow_disease": True},
        {"bleeding_active": True},
        {"systemic_infection": "controlled"},
        {"platelets_10e9_l": 42.0},
        {"wbc_10e9_l": 3.1},
        {"immunosuppressive_therapy": True},
        {"neurological_deficit_pronounced": True},
        {"gait_disturbance_other_cause": True},
        {"amputation_needed": "major"},
        {"diabetes": "type1"},
        {"lvef_pct": 20.0},
        {"stroke_date": "2026-08-20"},
        {"myocardial_infarction_date": "2026-07-01"},
        {"angiography_contraindicated": True},
        {"substance_abuse_date": "2026-09-01"},
        {"sex": "female", "pregnant": True},
        {"hbv_dna_detectable": True},
        {"consent_signed": False},
    ),
)

# A 52-year-old woman with two small ischaemic ulcers (Rutherford 5), qualifying on ankle pressure alone, with
# old events and procedures outside every window (as tests/unit/test_nl003_criteria.py).
NL003 = Trial(
    "NL003-CLI-III-2",
    hand_nl003,
    dict.fromkeys(
        [
            *["immunosuppressive_therapy", "chemoradiotherapy_current"],
            *["hiv_positive", "hcv_antibody_positive", "hbsag_positive"],
            *["malignancy", "tumor_screen_abnormal", "substance_abuse", "ulcer_exposes_bone_or_joint"],
        ],
        False,
    )
    | {
        "consent_date": CONSENT,
        "birth_date": "1974-03-15",
        "sex": "female",
        "cli_diagnosed": True,
        "rutherford_grade": 5,
        "ankle_systolic_pressure_mmhg": 64.0,
        "abi": 0.55,
        "tcpo2_mmhg": 32.0,
        "infrainguinal_stenosis_pct": 85.0,
        "infrainguinal_imaging": "cta",
        "infrainguinal_imaging_date": "2026-08-10",
        "ulcer_onset_date": "2026-08-15",
        "ulcer_largest_area_cm2": 4.5,
        "ulcer_count": 2,
        "gangrene": "none",
        "follow_up_agreed": True,
        "diary_compliance_pct": 92.0,
        "childbearing_potential": True,
        "contraception_agreed": True,
        "pregnancy_test_negative": True,
        "consent_signed": True,
        "acute_limb_ischemia": True,
        "acute_limb_ischemia_current": False,
        "revascularization": "endovascular",
        "revascularization_date": "2026-06-15",
        "sympathectomy_or_amputation": True,
        "sympathectomy_or_amputation_date": "2025-01-10",
        "iliac_stenosis_pct": 40.0,
        "limb_infection": "controlled",
        "heart_failure": True,
        "nyha_class": 2,
        "stroke": True,
        "stroke_date": "2024-05-01",
        "myocardial_infarction": True,
        "myocardial_infarction_date": "2025-11-20",
        "unstable_angina": True,
        "unstable_angina_date": "2026-03-01",
        "hypertension": True,
        "antihypertensive_drug_count": 3,
        "systolic_bp_mmhg": 150.0,
        "diastolic_bp_mmhg": 85.0,
        "diabetes": "type2",
        "diabetic_retinopathy_grade": 2,
        "retinopathy_exam_available": True,
        "can_describe_symptoms": True,
        "liver_disease": "mild",
        "hba1c_pct": 7.8,
        "hemoglobin_g_l": 118.0,
        "wbc_10e9_l": 6.2,
        "platelets_10e9_l": 210.0,
        "ast_x_uln": 1.1,
        "alt_x_uln": 0.9,
        "creatinine_x_uln": 1.4,
        "life_expectancy_months": 48,
        "alcohol_units_per_week": 4.0,
        "other_trial": True,
        "other_trial_date": "2025-11-20",
    },
    (21, 79),
    (
        _choices("sex", "female", "male"),
        _choices("ankle_systolic_pressure_mmhg", 38.0, 64.0, 70.0),
        _choices("abi", 0.35, 0.55, 0.8),
        _choices("tcpo2_mmhg", 12.0, 32.0, 45.0),
        _choices("infrainguinal_stenosis_pct", 70.0, 85.0, 100.0),
        _choices("infrainguinal_imaging", "dsa", "cta"),
        _choices("infrainguinal_imaging_date", "2026-07-01", "2026-08-10", "2026-09-28"),
        _choices("ulcer_onset_date", "2026-02-01", "2026-08-15", "2026-09-17"),
        _choices("ulcer_largest_area_cm2", 0.8, 4.5, 10.0),
        _choices("ulcer_count", 1, 2, 3),
        _choices("gangrene", "none", "dry_toe"),
        _choices("diary_compliance_pct", 70.0, 85.0, 100.0),
        _choices("iliac_stenosis_pct", 0.0, 40.0, 65.0),
        _choices("limb_infection", "none", "controlled"),
        _choices("nyha_class", 1, 2),
        _choices("hba1c_pct", 6.2, 7.8, 10.0),
        _choices("hemoglobin_g_l", 80.0, 118.0, 142.0),
        _choices("wbc_10e9_l", 3.0, 6.2, 9.9),
        _choices("platelets_10e9_l", 75.0, 210.0, 350.0),
        _choices("creatinine_x_uln", 0.7, 1.4, 3.0),
        _choices("alcohol_units_per_week", 0.0, 4.0, 14.0),
        _choices("life_expectancy_months", 12, 48, 90),
        ({"childbearing_potential": False},),
        ({"hypertension": False},),
        ({"heart_failure": False},),
        ({"diabetes": "none"},),
        (
            {"revascularization": "none"},
            {"revascularization": "surgical", "revascularization_date": "2026-02-10"},
        ),
        ({"other_trial": False},),
    ),
    (
        {"birth_date": "1944-02-01"},
        {"cli_diagnosed": False},
        {"rutherford_grade": 4},
        {"ankle_systolic_pressure_mmhg": 90.0, "abi": 0.7, "tcpo2_mmhg": 41.0},
        {"infrainguinal_stenosis_pct": 60.0},
        {"infrainguinal_imaging": "ultrasound"},
        {"infrainguinal_imaging_date": "2026-06-20"},
        {"ulcer_onset_date": _days_before_consent(13)},
        {"ulcer_largest_area_cm2": 12.5},
        {"ulcer_count": 5},
        {"ulcer_count": 0},
        {"ulcer_exposes_bone_or_joint": True},
        {"gangrene": "wet"},
        {"diary_compliance_pct": 55.0},
        {"contraception_agreed": False},
        {"pregnancy_test_negative": False},
        {"consent_signed": False},
        {"acute_limb_ischemia_current": True},
        {"revascularization_date": _days_before_consent(20)},
        {"sympathectomy_or_amputation_date": _days_before_consent(27)},
        {"iliac_stenosis_pct": 75.0},
        {"limb_infection": "severe"},
        {"limb_infection": "uncontrolled"},
        {"nyha_class": 3},
        {"stroke_date": "2026-08-01"},
        {"unstable_angina_date": "2026-07-01"},
        {"systolic_bp_mmhg": 185.0},
        {"diastolic_bp_mmhg": 112.0},
        {"diabetic_retinopathy_grade": 4},
        {"retinopathy_exam_available": False},
        {"can_describe_symptoms": False},
        {"liver_disease": "decompensated"},
        {"chemoradiotherapy_current": True},
        {"hiv_positive": True},
        {"hbsag_positive": True},
        {"hemoglobin_g_l": 72.0},
        {"platelets_10e9_l": 60.0},
        {"alt_x_uln": 3.5},
        {"creatinine_x_uln": 3.4},
        {"hba1c_pct": 11.2},
        {"tumor_screen_abnormal": True},
        {"life_expectancy_months": 9},
        {"alcohol_units_per_week": 21.0},
        {"other_trial_date": "2026-08-01"},
    ),
)

# The trial's criteria read only cli_diagnosed; a site sends its whole profile of the applicant anyway.
ADMSCC = Trial(
    "ADMSCC-CLI-P1-2A",
    hand_admscc,
    NCT06359912.baseline,
    (19, 90),
    NCT06359912.variations,
    ({"cli_diagnosed": False},),
)

TRIALS = {t.trial_id: t for t in (NCT06359912, NCT03239535, NL003, ADMSCC)}
FILES = {
    "NCT06359912": "NCT06359912.criteria.yaml",
    "NCT03239535": "NCT03239535.criteria.yaml",
    "NL003-CLI-III-2": "NL003-CLI-III-2.criteria.yaml",
    "ADMSCC-CLI-P1-2A": "ADMSCC-CLI-P1-2A.criteria.yaml",
}


def _read(compiled: CompiledCriteria) -> list[str]:
    """The observations the compiled criteria read, age standing for birth_date and age_years."""
    names = set(compiled.variables)
    if "age" in names:
        names.discard("age")
        names.update(("birth_date", "age_years"))
    return sorted(names)


def _birth_date(rng: random.Random, reference: date, age: int) -> str:
    """A birth date giving `age` completed years on `reference`."""
    return (_months_back(reference, 12 * age) - timedelta(days=rng.randint(1, 360))).isoformat()


def realistic_applicants(
    trial: Trial, compiled: CompiledCriteria, count: int, seed: int
) -> list[dict[str, Any]]:
    """`count` applicants, as intake stores them (validated, canonical units, no screening id)."""
    rng = random.Random(f"{seed}:{trial.trial_id}")
    read = [n for n in _read(compiled) if n not in ("age_years", "sex")] + ["consent_date"]  # sex: required
    consent = date.fromisoformat(CONSENT)
    applicants = []
    for n in range(count):
        applicant = dict(trial.baseline)
        applicant["birth_date"] = _birth_date(rng, consent, rng.randint(*trial.ages))
        for group in trial.variations:
            if rng.random() < 0.5:
                applicant.update(rng.choice(group))
        if rng.random() < 0.1:  # age instead of birth date
            applicant["age_years"] = rng.randint(*trial.ages)
            del applicant["birth_date"]
        kind = rng.random()
        if kind < 0.20 or kind >= 0.95:  # ineligible, or to review on purpose, on one or two criteria
            for _ in range(1 + (rng.random() < 0.2)):
                applicant.update(rng.choice(trial.failures))
        if kind >= 0.80:  # one to three observations the criteria read are left out
            present = [name for name in read if name in applicant]
            for name in rng.sample(present, min(len(present), rng.randint(1, 3))):
                del applicant[name]
            if "birth_date" not in applicant and "age_years" not in applicant:
                applicant["age_years"] = rng.randint(*trial.ages)  # intake needs one of them
        stored = Applicant.model_validate({**applicant, "screening_id": f"B-{n}"}).observations()
        applicants.append(stored)
    return applicants


# ---------------------------------------------------------------------------------------------------------
# Fuzzing for the agreement check: every observation the criteria read, kept, randomised around the
# criteria's own thresholds and window edges, or left out; the consent date too (month ends included).
# ---------------------------------------------------------------------------------------------------------

SPECS = {v.name: v for v in VOCABULARY}
CONSENT_DATES = [
    date(2026, 5, 31), date(2026, 3, 31), date(2026, 3, 29), date(2026, 2, 28), date(2024, 2, 29),
    date(2025, 12, 31), date(2026, 1, 31), date(2026, 7, 31), date(2026, 1, 1), date(2026, 10, 1),
]  # fmt: skip


def _thresholds(node: Any, found: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Per variable, the constants and periods its comparisons in a rule tree use."""
    if isinstance(node, list):
        for item in node:
            _thresholds(item, found)
    elif isinstance(node, dict) and "var" in node:
        for op, argument in node.items():
            if op != "var":
                values = argument if isinstance(argument, list) else [argument]
                found.setdefault(node["var"], []).extend(values)
    elif isinstance(node, dict):
        for value in node.values():
            _thresholds(value, found)
    return found


def _period_back(reference: date, period: dict[str, int]) -> date:
    ((unit, amount),) = period.items()
    if unit in ("days", "weeks"):
        return reference - timedelta(**{unit: amount})
    return _months_back(reference, amount * (12 if unit == "years" else 1))


def _random_value(rng: random.Random, name: str, constants: list[Any], reference: date) -> Any:
    spec = SPECS[name]
    if spec.kind == "bool":
        return rng.random() < 0.5
    if spec.kind == "enum":
        return rng.choice(spec.values)
    if spec.kind == "date":
        periods = [c for c in constants if isinstance(c, dict)]
        if periods and rng.random() < 0.6:
            edge = _period_back(reference, rng.choice(periods))
            return (edge + timedelta(days=rng.choice((-1, 0, 1)))).isoformat()
        return (reference - timedelta(days=rng.randint(0, 4000))).isoformat()
    low, high = spec.low, spec.high
    assert low is not None and high is not None
    numbers = [c for c in constants if isinstance(c, int | float) and not isinstance(c, bool)]
    if spec.kind == "int":
        if numbers and rng.random() < 0.6:
            return min(max(int(rng.choice(numbers)) + rng.choice((-1, 0, 1)), int(low)), int(high))
        return rng.randint(int(low), int(high))
    if numbers and rng.random() < 0.6:
        return min(max(rng.choice(numbers) + rng.choice((-1, -0.01, 0, 0, 0.01, 1)), low), high)
    return round(rng.uniform(low, min(high, 3 * max(numbers, default=high))), 2)


def fuzzed_applicants(
    document: dict[str, Any], compiled: CompiledCriteria, base: list[dict[str, Any]], count: int, seed: int
) -> list[dict[str, Any]]:
    rng = random.Random(f"fuzz:{seed}:{document['trial_id']}")
    constants = _thresholds(document["criteria"], {})
    ages = [a for a in constants.get("age", []) if isinstance(a, int)]
    constants["age_years"] = ages
    read = _read(compiled)
    applicants = []
    for _ in range(count):
        applicant = dict(rng.choice(base))
        intensity = rng.choice((0.05, 0.15, 0.4))
        r = rng.random()
        if r < 0.1:
            applicant.pop("consent_date", None)
        elif r < 0.4:
            applicant["consent_date"] = rng.choice(CONSENT_DATES).isoformat()
        reference = (
            date.fromisoformat(applicant["consent_date"]) if "consent_date" in applicant else SUBMITTED
        )
        for name in read:
            r = rng.random()
            if r < intensity / 3:
                applicant.pop(name, None)
            elif r < intensity:
                if name == "birth_date":
                    age = (
                        rng.choice(ages) + rng.choice((-1, 0, 1))
                        if rng.random() < 0.7
                        else rng.randint(5, 100)
                    )
                    born = _months_back(reference, 12 * age) + timedelta(days=rng.choice((-1, 0, 1, 40)))
                    applicant[name] = born.isoformat()
                else:
                    applicant[name] = _random_value(rng, name, constants.get(name, []), reference)
        applicants.append(applicant)
    return applicants


# ---------------------------------------------------------------------------------------------------------
# Agreement and timing
# ---------------------------------------------------------------------------------------------------------


def engine_answer(compiled: CompiledCriteria, applicant: Obs) -> Answer:
    evaluation = compiled.evaluate(applicant, SUBMITTED)
    return evaluation.decision, tuple(r.outcome for r in evaluation.results)


def check_agreement(
    trial: Trial, compiled: CompiledCriteria, applicants: list[dict[str, Any]], what: str
) -> None:
    ids = [c.id for c in compiled.criteria]
    for applicant in applicants:
        engine, hand = engine_answer(compiled, applicant), trial.hand(applicant, SUBMITTED)
        if engine != hand:
            differing = [
                f"{cid}: engine {e}, hand-written {h}"
                for cid, e, h in zip(ids, engine[1], hand[1], strict=False)
                if e != h
            ]
            print(
                f"{trial.trial_id}: engine and hand-written disagree on a {what} applicant\n"
                f"  observations: {dict(sorted(applicant.items()))}\n"
                f"  decision: engine {engine[0]}, hand-written {hand[0]}\n  " + "\n  ".join(differing),
                file=sys.stderr,
            )
            raise SystemExit(2)


def _one_pass(evaluate: Callable[[Obs, date], Any], applicants: list[dict[str, Any]], passes: int) -> float:
    submitted = SUBMITTED
    started = time.perf_counter()
    for _ in range(passes):
        for applicant in applicants:
            evaluate(applicant, submitted)
    return time.perf_counter() - started


def _passes(evaluate: Callable[[Obs, date], Any], applicants: list[dict[str, Any]]) -> int:
    once = _one_pass(evaluate, applicants, 1)
    return max(1, math.ceil(SAMPLE_SECONDS / max(once, 1e-9)))


@dataclass(frozen=True)
class Rates:
    best: float
    median: float


def measure(
    functions: dict[str, Callable[[Obs, date], Any]], applicants: list[dict[str, Any]], rounds: int
) -> dict[str, Rates]:
    """Rates in applications per second; the functions' samples alternate, in turn first, every round."""
    passes = {name: _passes(f, applicants) for name, f in functions.items()}
    times: dict[str, list[float]] = {name: [] for name in functions}
    order = list(functions)
    for _ in range(rounds):
        for name in order:
            times[name].append(_one_pass(functions[name], applicants, passes[name]) / passes[name])
        order.reverse()
    n = len(applicants)
    return {name: Rates(n / min(ts), n / statistics.median(ts)) for name, ts in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="timed applicants per trial")
    parser.add_argument("--rounds", type=int, default=15, help="timed samples per function")
    parser.add_argument("--seed", type=int, default=20261101)
    parser.add_argument("--fuzz", type=int, default=20000, help="extra applicants per trial, agreement only")
    parser.add_argument("--trial", action="append", choices=sorted(TRIALS), help="default: all four")
    args = parser.parse_args()

    cpus = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cpus
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    print(
        f"Screening engine alone: applications per second on one core, per seed trial, beside hand-written"
        f" Python\n{platform.python_implementation()} {platform.python_version()} ({platform.machine()}),"
        f" {cpus} CPUs ({usable} usable), load average {load}, {time.strftime('%Y-%m-%d %H:%M %Z')}\n"
        "measured: engine = CompiledCriteria.evaluate(observations, submitted_on), criteria compiled once:\n"
        "            the decision and a CriterionResult per criterion (outcome, missing names, notes)\n"
        "          hand-written = one plain Python function per trial: the decision and each outcome\n"
        f"          {args.count} stored applicants per trial (seed {args.seed}), one call per applicant,"
        " one process, gc on;\n"
        f"          best (median) of {args.rounds} interleaved samples, each >= {SAMPLE_SECONDS} s\n"
        f"checked:  same decision and outcomes for every timed applicant and {args.fuzz} fuzzed ones per"
        " trial\n"
        f"target:   engine >= {TARGET:.0%} of the hand-written rate (best samples)"
    )
    rows = []
    for trial_id in args.trial or list(TRIALS):
        trial = TRIALS[trial_id]
        document = bundled_document(FILES[trial_id])
        compiled = compile_document(document)
        applicants = realistic_applicants(trial, compiled, args.count, args.seed)
        check_agreement(trial, compiled, applicants, "timed")
        check_agreement(
            trial, compiled, fuzzed_applicants(document, compiled, applicants, args.fuzz, args.seed), "fuzzed"
        )
        mix = Counter(trial.hand(a, SUBMITTED)[0] for a in applicants)
        gc.collect()
        rates = measure({"engine": compiled.evaluate, "hand": trial.hand}, applicants, args.rounds)
        engine, hand = rates["engine"], rates["hand"]
        ratio, ratio_median = engine.best / hand.best, engine.median / hand.median
        rows.append(
            (
                trial_id,
                len(compiled.criteria),
                f"{mix['eligible']}/{mix['ineligible']}/{mix['needs_review']}",
                f"{engine.best:,.0f} ({engine.median:,.0f})",
                f"{hand.best:,.0f} ({hand.median:,.0f})",
                f"{ratio:.1%} ({ratio_median:.1%})",
                "PASS" if ratio >= TARGET else "FAIL",
            )
        )
    header = ("trial", "criteria", "elig/inel/review", "engine/s", "hand-written/s", "ratio", "vs 25%")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    print()
    for row in [header, *rows]:
        print(
            "  ".join(
                str(cell).ljust(w) if i == 0 else str(cell).rjust(w)
                for i, (cell, w) in enumerate(zip(row, widths, strict=True))
            )
        )
    return 0 if all(row[-1] == "PASS" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
