"""Each bundled trial's criteria written out by hand, as plain Python over an applicant's observations.

The reference the compiled engine is checked against and timed beside (bench/engine.py): one function per
trial in services/trials/seed_data/, criterion by criterion in the criteria file's order, each read as its
`rule` and `reading` say. A function takes the stored observations and the submission date and answers
(decision, the outcome of every criterion); it leaves out what the engine adds (missing names, notes).

A value is True, False or None (unknown: an observation it needs is absent); a boolean observation read
as `eq: true` is its own value. The Kleene AND of a tuple t is `False if False in t else None if None in
t else True`, OR the same with True and False swapped: written out inline, not called, so that the
reference stays as fast as hand-written code is.
"""

from __future__ import annotations

from calendar import monthrange
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from typing import Any

Obs = Mapping[str, Any]
Answer = tuple[str, tuple[str, ...]]
J = "judgment"  # a criterion only the investigator can decide: no rule, outcome `judgment`
OUTCOME = {True: "met", False: "not_met", None: "unknown", J: J}
FOUR_WEEKS = timedelta(weeks=4)
FOURTEEN_DAYS = timedelta(days=14)
THIRTEEN_DAYS = timedelta(days=13)
DIABETIC = ("type1", "type2")


def months_back(day: date, months: int) -> date:
    """`day` moved back by calendar months, clamped to the month's last day (31 May - 3 months = 28 Feb)."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    return date(year, month + 1, min(day.day, monthrange(year, month + 1)[1]))


def _reference_and_age(obs: Obs, submitted: date) -> tuple[date, Any]:
    """The reference date (consent, else submission) and the age on it (from birth_date, else age_years)."""
    v = obs.get("consent_date")
    ref = submitted if v is None else date.fromisoformat(v)
    v = obs.get("birth_date")
    if v is None:
        return ref, obs.get("age_years")
    born = date.fromisoformat(v)
    return ref, ref.year - born.year - ((ref.month, ref.day) < (born.month, born.day))


def _recent(happened: bool | None, when: str | None, since: date) -> bool | None:
    """`happened`, on or after `since`: its date is read only when it can matter."""
    if happened is False:
        return False
    t = (happened, None if when is None else date.fromisoformat(when) >= since)
    return False if False in t else None if None in t else True


def _answer(inclusions: tuple[Any, ...], exclusions: tuple[Any, ...], every: tuple[Any, ...]) -> Answer:
    """The decision from the inclusions' and exclusions' values, and every criterion's outcome in order."""
    if False in inclusions or True in exclusions:
        decision = "ineligible"
    elif None in inclusions or None in exclusions:
        decision = "needs_review"
    else:
        decision = "eligible"
    return decision, tuple(map(OUTCOME.__getitem__, every))


def nct06359912(obs: Obs, submitted: date) -> Answer:
    """NCT06359912: I1-I7, E1-E18 (E18 judgment)."""
    g = obs.get
    t: tuple[Any, ...]
    ref, age = _reference_and_age(obs, submitted)
    # I1 age 18-80
    i1 = None if age is None else 18 <= age <= 80
    # I2 CLI; no revascularization, or a failed endovascular one > 1 month ago; Rutherford 3-5; a symptom
    rev = g("revascularization")
    if rev is None:
        prior = None
    elif rev == "endovascular":
        v = g("revascularization_relieved_symptoms")
        w = g("revascularization_date")
        t = (
            None if v is None else not v,
            None if w is None else date.fromisoformat(w) < months_back(ref, 1),
        )
        prior = False if False in t else None if None in t else True
    else:
        prior = rev == "none"
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
        None if x is None else date.fromisoformat(x) >= months_back(ref, 1),
    )
    i3 = False if False in t else None if None in t else True
    # I4 Wagner <= 4
    v = g("wagner_grade")
    i4 = None if v is None else v <= 4
    # I5 rest pain -> onset more than 14 days ago
    pain = g("rest_pain")
    i5: bool | None
    if pain is False:
        i5 = True
    else:
        v = g("rest_pain_onset_date")
        long = None if v is None else date.fromisoformat(v) < ref - FOURTEEN_DAYS
        i5 = long if pain else (True if long else None)
    # I6 childbearing potential -> contraception
    fertile = g("childbearing_potential")
    i6: bool | None
    if fertile is False:
        i6 = True
    else:
        v = g("contraception_agreed")
        i6 = v if fertile else (True if v else None)
    # I7 consent and follow-up
    t = (g("consent_signed"), g("follow_up_agreed"))
    i7 = False if False in t else None if None in t else True
    # E1 prior cell therapy; E2 other trial within 4 weeks; E3 iliac stenosis >= 75%
    e1 = g("prior_cell_therapy")
    e2 = _recent(g("other_trial"), g("other_trial_date"), ref - FOUR_WEEKS)
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
    e6: bool | None
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
    # E10 severe respiratory disease; E11 serology
    e10 = g("severe_respiratory_disease")
    t = (g("hbsag_positive"), g("hcv_antibody_positive"), g("syphilis_positive"), g("hiv_positive"))
    e11 = True if True in t else None if None in t else False
    # E12 malignancy, active or within 5 years
    v = g("malignancy")
    e12: bool | None
    if v is False:
        e12 = False
    else:
        w = g("malignancy_date")
        t = (g("malignancy_active"), None if w is None else date.fromisoformat(w) >= months_back(ref, 60))
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
    # E16 allergy to more than 2 drugs; E17 substance abuse
    v = g("drug_allergy_count")
    e16 = None if v is None else v > 2
    e17 = g("substance_abuse")
    inclusions = (i1, i2, i3, i4, i5, i6, i7)
    exclusions = (e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17)
    return _answer(inclusions, exclusions, (*inclusions, *exclusions, J))


def nct03239535(obs: Obs, submitted: date) -> Answer:
    """NCT03239535: I1-I11, E1-E22 (E13 judgment)."""
    g = obs.get
    t: tuple[Any, ...]
    ref, age = _reference_and_age(obs, submitted)
    three_months = months_back(ref, 3)
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
    i8: bool | None
    if type2 is False:
        i8 = True
    else:
        v = g("hba1c_pct")
        t = (g("diabetes_treated"), None if v is None else v <= 8.5)
        then = False if False in t else None if None in t else True
        i8 = then if type2 else (True if then else None)
    # I9 hypertension -> treated; untreated with controlled pressure goes to review
    v = g("hypertension")
    i9: bool | None
    if v is False:
        i9 = True
    else:
        treated, then = g("hypertension_treated"), None
        if treated is True:
            then = True
        elif treated is not None:
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
    # E1 wet gangrene or any limb infection; E2 extensive dry gangrene
    gangrene = g("gangrene")
    v = g("limb_infection")
    t = (
        None if gangrene is None else gangrene == "wet",
        None if v is None else v in ("controlled", "uncontrolled", "severe"),
    )
    e1 = True if True in t else None if None in t else False
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
    # E6 bleeding; E7 any other infection
    e6 = g("bleeding_active")
    v = g("systemic_infection")
    e7 = None if v is None else v in ("controlled", "uncontrolled")
    # E8 creatinine >= 2 x ULN; E9 bilirubin, ALT or AST >= 2 x ULN
    e8 = None if cr is None else cr >= 2.0
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
    # E11 neurological deficit; E12 gait disturbance of another cause (E13 is the judgment)
    e11 = g("neurological_deficit_pronounced")
    e12 = g("gait_disturbance_other_cause")
    # E14 major amputation needed; E15 type 1 diabetes
    v = g("amputation_needed")
    e14 = None if v is None else v == "major"
    e15 = None if diabetes is None else diabetes == "type1"
    # E16 respiratory complications or LVEF < 25%
    v = g("lvef_pct")
    t = (g("severe_respiratory_disease"), None if v is None else v < 25)
    e16 = True if True in t else None if None in t else False
    # E17 stroke or infarction within 3 months
    t = (
        _recent(g("stroke"), g("stroke_date"), three_months),
        _recent(g("myocardial_infarction"), g("myocardial_infarction_date"), three_months),
    )
    e17 = True if True in t else None if None in t else False
    # E18 angiography contraindicated
    e18 = g("angiography_contraindicated")
    # E19 substance abuse within 3 months goes to review
    e19 = False if _recent(g("substance_abuse"), g("substance_abuse_date"), three_months) is False else None
    # E20 pregnant or lactating woman
    v = g("sex")
    t = (g("pregnant"), g("lactating"))
    either = True if True in t else None if None in t else False
    t = (None if v is None else v == "female", either)
    e20 = False if False in t else None if None in t else True
    # E21 HIV, HCV, HBV; E22 consent not signed
    # HBV DNA, a reflex test after a positive HBsAg, is negative when not done after a negative HBsAg
    dna = g("hbv_dna_detectable")
    hbv_dna = dna if dna is not None else (False if g("hbsag_positive") is False else None)
    t = (g("hiv_positive"), g("hcv_antibody_positive"), g("hbsag_positive"), hbv_dna)
    e21 = True if True in t else None if None in t else False
    e22 = None if signed is None else not signed
    inclusions = (i1, i2, i3, i4, i5, i6, i7, i8, i9, i10, i11)
    exclusions = (e1, e2, e3, e4, e5, e6, e7, e8, e9, e10, e11, e12,
                  e14, e15, e16, e17, e18, e19, e20, e21, e22)  # fmt: skip
    return _answer(inclusions, exclusions, (*inclusions, *exclusions[:12], J, *exclusions[12:]))


def nl003(obs: Obs, submitted: date) -> Answer:
    """NL003-CLI-III-2: I1-I6, E1-E19 with E14.a and E17.a (E3, E14.a, E17 judgment)."""
    g = obs.get
    t: tuple[Any, ...]
    ref, age = _reference_and_age(obs, submitted)
    three_months = months_back(ref, 3)
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
        None if y is None else date.fromisoformat(y) >= three_months,
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
    contraception: bool | None
    tested: bool | None
    if fertile is False:
        contraception = tested = True
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
    t = (
        revascularized,
        _recent(g("sympathectomy_or_amputation"), g("sympathectomy_or_amputation_date"), ref - FOUR_WEEKS),
    )
    e2 = True if True in t else None if None in t else False
    # E4 iliac stenosis >= 70% (E3 is a judgment)
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
    t = (
        _recent(g("stroke"), g("stroke_date"), three_months),
        _recent(g("myocardial_infarction"), g("myocardial_infarction_date"), three_months),
        _recent(g("unstable_angina"), g("unstable_angina_date"), three_months),
    )
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
    v = g("diabetes")
    diabetic = None if v is None else v in DIABETIC
    v = g("diabetic_retinopathy_grade")
    t = (diabetic, None if v is None else v >= 4)
    proliferative = False if False in t else None if None in t else True
    v = g("retinopathy_exam_available")
    t = (proliferative, None if v is None else not v)
    e9 = True if True in t else None if None in t else False
    # E10 cannot describe symptoms; E11 decompensated liver disease
    v = g("can_describe_symptoms")
    e10 = None if v is None else not v
    v = g("liver_disease")
    e11 = None if v is None else v == "decompensated"
    # E12 immunosuppressants or chemoradiotherapy
    t = (g("immunosuppressive_therapy"), g("chemoradiotherapy_current"))
    e12 = True if True in t else None if None in t else False
    # E13 HIV, HCV; HBsAg positive goes to review
    t = (g("hiv_positive"), g("hcv_antibody_positive"), False if g("hbsag_positive") is False else None)
    e13 = True if True in t else None if None in t else False
    # E14 laboratory limits (E14.a is a judgment)
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
    # E16 malignancy or abnormal tumour screen (E17 is a judgment)
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
    e19 = _recent(g("other_trial"), g("other_trial_date"), three_months)
    inclusions = (i1, i2, i3, i4, i5, i6)
    exclusions = (e1, e2, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, e15, e16, e17a, e18, e19)
    every = (*inclusions, e1, e2, J, e4, e5, e6, e7, e8, e9, e10, e11, e12, e13, e14, J,
             e15, e16, J, e17a, e18, e19)  # fmt: skip
    return _answer(inclusions, exclusions, every)


def admscc(obs: Obs, submitted: date) -> Answer:
    """ADMSCC-CLI-P1-2A: I1 CLI, I2 review for every applicant with CLI, I3 and E1 judgment."""
    cli = obs.get("cli_diagnosed")
    i2 = False if cli is False else None
    return _answer((cli, i2), (), (cli, i2, J, J))


REFERENCES: dict[str, Callable[[Obs, date], Answer]] = {
    "NCT06359912": nct06359912,
    "NCT03239535": nct03239535,
    "NL003-CLI-III-2": nl003,
    "ADMSCC-CLI-P1-2A": admscc,
}
