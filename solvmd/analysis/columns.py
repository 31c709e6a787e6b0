"""Column names of every table the analysis produces, in one place.

Units are part of the name (``r_A``, ``time_ps``, ``D_m2_s``, ``sigma_S_m``); a name
without a unit is a count, a fraction, an index or a label. Coordination numbers say
what they count: ``cn_molecules`` (distinct molecules in the first shell; a bidentate
DME counts once) or ``cn_donor_atoms`` (donor atoms in the first shell; the same DME
counts twice).
"""

# --- the contact table (one row per frame, cation, donor atom in the first shell) ---
FRAME = "frame"  # trajectory frame number (not the index among analysed frames)
TIME = "time_ps"
CATION = "cation_ix"  # 0-based atom index of the cation in the universe
PARTNER = "partner"  # partner species name from the spec (e.g. "DME", "FSI")
PARTNER_RES = "partner_resix"  # 0-based residue index of the partner molecule
DONOR = "donor_ix"  # 0-based atom index of the donor atom
DIST = "r_A"  # cation-donor distance, angstrom (minimum image)

# --- RDF ---
DONOR_TYPE = "donor_type"  # donor atom type within a partner ("O", "N"...), or ALL_DONORS
ALL_DONORS = "all"
R = "r_A"  # bin centre
G = "g_r"
N_R = "n_r"  # running coordination number: donor atoms per cation within r
N_DONORS = "n_donor_atoms"

# --- cutoffs ---
CUTOFF = "cutoff_A"
COORDINATING = "coordinating"
CUTOFF_SOURCE = "cutoff_source"  # "auto" | "override" | "none"
PEAK_R = "peak_r_A"
PEAK_G = "peak_g_r"
MIN_R = "min_r_A"
MIN_G = "min_g_r"

# --- coordination ---
TOTAL = "total"  # pseudo-partner: all partners together
CN_MOL = "cn_molecules"
CN_MOL_STD = "cn_molecules_std"
CN_DON = "cn_donor_atoms"
CN_DON_STD = "cn_donor_atoms_std"
CN_DON_RDF = "cn_donor_atoms_rdf"  # running CN of the RDF read at the cutoff (independent check)
FRAC_ANY = "fraction_cations_with_any"  # fraction of cations with >= 1 such molecule
COUNT_KIND = "counts"  # "molecules" | "donor_atoms"
N = "n"
FRACTION = "fraction"
PERCENT = "percent"
N_SHELLS = "n_shells"  # number of (cation, frame) shells observed
N_MOLECULES = "n_molecules"

# --- shell census ---
COMPOSITION = "composition"  # e.g. "DME:2 FSI:1"
EMPTY_SHELL = "(empty)"
COUNT = "count"

# --- speciation / clusters ---
DEFINITION = "definition"  # ANION_CENTRIC | CATION_CENTRIC
ANION_CENTRIC = "anion-centric"
CATION_CENTRIC = "cation-centric (network)"
SPECIES = "species"
CLASS = "class"  # SSIP | CIP | AGG
SSIP, CIP, AGG = "SSIP", "CIP", "AGG"
MEAN_COUNT = "mean_count_per_frame"
MEANING = "meaning"
ALL_ANIONS = "all anions"
CATIONS = "cations"
N_CATIONS = "n_cations"
N_ANIONS = "n_anions"
CLUSTER_SIZE = "n_ions"
FRAC_CLUSTERS = "fraction_of_clusters"
FRAC_IONS = "fraction_of_ions"
MEAN_CLUSTERS = "mean_clusters_per_frame"

# --- residence ---
TAU_1E = "tau_1e_ps"  # time for the intermittent contact autocorrelation to reach 1/e
TAU_FIT = "tau_fit_ps"  # exponential fit A exp(-t/tau) of the intermittent autocorrelation
FIT_AMPLITUDE = "fit_amplitude"
TAU_CONT_1E = "tau_continuous_1e_ps"  # 1/e time of the continuous (survival) autocorrelation
TAU_CONT_MEAN = "tau_continuous_mean_ps"  # integral of the continuous autocorrelation
FIT_START = "fit_start_ps"
FIT_STOP = "fit_stop_ps"
N_PAIRS = "n_pairs"
DECAYED = "decayed"
WARNING = "warning"
LAG = "lag_ps"
ACF = "acf_intermittent"
ACF_CONT = "acf_continuous"
DT = "dt_ps"

# --- transport ---
METHOD = "method"
CHARGE = "charge_e"
D = "D_m2_s"
SIGMA = "sigma_S_m"
SIGMA_MS_CM = "sigma_mS_cm"
MSD = "msd_A2"
TEMPERATURE = "temperature_K"
VOLUME = "volume_A3"
MSD_SELF = "self-diffusion (MSD)"
NERNST_EINSTEIN = "Nernst-Einstein"
EINSTEIN_HELFAND = "Einstein-Helfand"
ALL_IONS = "all ions"
# Onsager transport matrix and what follows from it (docs/transport.md)
SPECIES_J = "species_j"  # second species of an L_ij row (L_ij = L_ji: one row per pair i <= j)
REF_FRAME = "reference_frame"  # BARYCENTRIC | SOLVENT_FIXED | LAB
BARYCENTRIC = "barycentric"  # centre of mass of the whole system at rest (drift removed)
SOLVENT_FIXED = "solvent-fixed"  # centre of mass of the neutral (solvent) molecules at rest
LAB = "lab (drift not removed)"
ONSAGER = "Onsager L_ij"
ONSAGER_SIGMA = "conductivity from L_ij"  # e^2 N_A^2 sum_ij z_i z_j L_ij
TRANSFERENCE_ROW = "transference number"
IONICITY_ROW = "ionicity"
L = "L_mol2_J_m_s"  # Onsager coefficient, mol^2 J^-1 m^-1 s^-1 (molar fluxes, molar chemical potentials)
L_STD = "L_std_mol2_J_m_s"
D_STD = "D_std_m2_s"
SIGMA_STD = "sigma_std_S_m"
TRANSFERENCE = "transference"  # with correlations: t_i = z_i sum_j z_j L_ij / sum_kl z_k z_l L_kl
TRANSFERENCE_STD = "transference_std"
TRANSFERENCE_IDEAL = "transference_ideal"  # from self-diffusion: z_i^2 N_i D_i / sum_k z_k^2 N_k D_k
TRANSFERENCE_IDEAL_STD = "transference_ideal_std"
IONICITY = "ionicity"  # sigma / sigma_NE
IONICITY_STD = "ionicity_std"
LOGLOG_SLOPE = "msd_loglog_slope"  # d ln MSD / d ln t fitted over the fit window (1: diffusive)
DIFFUSIVE = "diffusive"  # regime check: the fit window lies in the diffusive regime
N_BLOCKS = "n_blocks"  # independent time blocks (or runs) behind the std columns
ERROR_METHOD = "error_method"
N_RUNS = "n_runs"
CURVE = "curve"  # msd.csv: "self" | "collective" | "charge dipole"

# --- interface (electrolyte above a sheet; heights measured from the sheet plane) ---
Z = "z_A"  # height above the sheet plane, (z - z0) mod Lz, in [0, Lz)
HEIGHT = "height_A"  # distance to the nearer sheet face, min(z, Lz - z)
HEIGHT_LO = "height_lo_A"
HEIGHT_HI = "height_hi_A"
LAYER = "layer"  # CONTACT_LAYER or "layer k"
CONTACT_LAYER = "contact"
ALL_SPECIES = "all"
N_DENS = "n_per_nm3"  # molecule centres per nm^3
MASS_DENS = "mass_g_cm3"
N_SAMPLES = "n_samples"  # (cation, frame) samples in the bin
G_SITE = "g_site"  # cation - metal site g(r), 3D, r in R
N_SITE = "n_site"  # running count: cations per site within r
G_LATERAL = "g_lateral_contact"  # in-plane g of contact-layer cations around the site
LATERAL_LO = "lateral_lo_A"  # in-plane distance to the nearest metal site
LATERAL_HI = "lateral_hi_A"
# the summary table (one row per quantity)
QUANTITY, VALUE, STD, UNIT, NOTE = "quantity", "value", "std", "unit", "note"
