"""Epidemiological parameters of the simulator, per CDC age band, with where each comes from.

All events are synthetic. Values marked "CDC" are derived from published figures; values marked
"approximate" are modelling choices inside the range the literature reports, not estimates.
docs/simulator.md explains each one.
"""

# CDC, "Preliminary Estimated Flu Disease Burden 2023–2024 Flu Season", Table 1 (point estimates):
# medically attended illnesses (medical visits) and hospitalizations by age band.
CDC_2023_24_MEDICAL_VISITS = {
    "0-4": 1_945_434,
    "5-17": 4_829_566,
    "18-49": 6_050_012,
    "50-64": 3_888_440,
    "65+": 1_461_701,
}
CDC_2023_24_HOSPITALIZATIONS = {
    "0-4": 20_243,
    "5-17": 25_466,
    "18-49": 91_780,
    "50-64": 95_897,
    "65+": 237_289,
}

# A simulated case is a reported, medically attended illness, so the age mix of cases follows
# medical visits, and P(admitted | case) = hospitalizations / medical visits (CDC, derived):
# 0-4 1.0 %, 5-17 0.53 %, 18-49 1.5 %, 50-64 2.5 %, 65+ 16.2 %.
_TOTAL_VISITS = sum(CDC_2023_24_MEDICAL_VISITS.values())
AGE_BAND_SHARE = {band: v / _TOTAL_VISITS for band, v in CDC_2023_24_MEDICAL_VISITS.items()}
ADMISSION_PROBABILITY = {
    band: CDC_2023_24_HOSPITALIZATIONS[band] / CDC_2023_24_MEDICAL_VISITS[band]
    for band in CDC_2023_24_MEDICAL_VISITS
}

# Age in years inside each band: uniform, except 65+ where the number of people falls with age
# (approximate, shaped like the 2020 Census age pyramid: half of 65+ are 65-74).
AGE_RANGES = {
    "0-4": (0, 4),
    "5-17": (5, 17),
    "18-49": (18, 49),
    "50-64": (50, 64),
    "65+": (65, 100),
}
OLDEST_AGE_DECAY_PER_YEAR = 0.93  # weight of age a in 65+ is 0.93 ** (a - 65)

# Influenza vaccination coverage of the population by band (CDC FluVaxView end-of-season
# estimates for recent seasons, rounded; approximate).
VACCINATION_COVERAGE = {"0-4": 0.62, "5-17": 0.52, "18-49": 0.33, "50-64": 0.47, "65+": 0.70}
# Vaccine effectiveness against medically attended illness (CDC US Flu VE Network, typically
# 40-60 %; 2023-24 interim estimates in that range): fewer vaccinated people become cases, so
# P(vaccinated | case) = c (1 - VE) / (c (1 - VE) + 1 - c).
VACCINE_EFFECTIVENESS = 0.45
# Share of cases whose vaccination status is not recorded (approximate).
VACCINATION_UNKNOWN = 0.08
# Among cases, vaccination attenuates severity: breakthrough infections are less often severe or
# admitted. Published odds ratios for severe outcomes among vaccinated vs unvaccinated cases are
# roughly 0.6-0.8 (e.g. Ferdinands et al., Clin Infect Dis 2021, attenuation meta-analysis);
# multipliers applied to both probabilities (approximate):
VACCINATED_ADMISSION_FACTOR = 0.7
VACCINATED_SEVERE_FACTOR = 0.6

# Severity at report time. Admitted cases are mostly severe; the rest moderate. Among cases not
# admitted, a few are severe (ED-treated) and about a third moderate (approximate).
ADMITTED_SEVERE_SHARE = 0.8
OUTPATIENT_SEVERE = {"0-4": 0.03, "5-17": 0.02, "18-49": 0.02, "50-64": 0.03, "65+": 0.06}
OUTPATIENT_MODERATE = 0.30

# Length of stay in days: log-normal with this median per band, sigma 0.6, at least 1 day, at
# most 60 (approximate; FluSurv-NET reports medians of about 3-5 days, longer for older adults).
LENGTH_OF_STAY_MEDIAN = {"0-4": 2.0, "5-17": 2.0, "18-49": 3.0, "50-64": 4.0, "65+": 5.0}
LENGTH_OF_STAY_SIGMA = 0.6

# Reported gender of cases (approximate: women make slightly more medical visits).
GENDER_SHARE = {"female": 0.53, "male": 0.46, "other": 0.005, "unknown": 0.005}

# Probability of each symptom among cases, for children (<18) and adults (approximate, from
# clinical series of laboratory-confirmed influenza: cough and fever dominate, GI symptoms are
# more common in children). Severe cases report shortness of breath more often.
SYMPTOM_PROBABILITY = {
    #                     child  adult
    "fever": (0.80, 0.68),
    "cough": (0.85, 0.88),
    "sore_throat": (0.50, 0.60),
    "runny_nose": (0.60, 0.55),
    "muscle_aches": (0.40, 0.65),
    "headache": (0.45, 0.65),
    "fatigue": (0.60, 0.75),
    "chills": (0.35, 0.55),
    "vomiting": (0.25, 0.08),
    "diarrhea": (0.15, 0.06),
    "shortness_of_breath": (0.10, 0.12),
}
SEVERE_SHORTNESS_OF_BREATH = 0.55

# Reports by hour of day, Eastern time (clinic hours dominate); the simulator shifts these to UTC
# by +5 h (EST; daylight time is ignored). Weekend days report fewer cases (approximate).
HOURLY_WEIGHT_EASTERN = [0.2, 0.15, 0.1, 0.1, 0.1, 0.2, 0.5, 1.0, 1.6, 2.0, 2.1, 2.0] + [
    1.9,
    1.9,
    1.9,
    1.8,
    1.7,
    1.5,
    1.3,
    1.1,
    0.9,
    0.7,
    0.5,
    0.3,
]
UTC_OFFSET_HOURS = 5
