"""Blinded reader studies for the mean opinion score (MOS).

:func:`create_study` builds a study folder from a study's results (images of every method and the
ground truth under anonymous ids, a seeded random order per reader, hashed secret tokens);
:func:`create_app` / :func:`make_server` serve the rating web app; :func:`score_study` computes MOS per
method, inter-reader agreement (ICC(2,1), ICC(2,k), Fleiss' kappa) and paired tests between methods.
"""

from taskloss.readers.agreement import Icc, category_counts, fleiss_kappa, holm, icc
from taskloss.readers.app import admin_link, create_app, make_server, reader_link
from taskloss.readers.scale import LikertScale, parse_scale
from taskloss.readers.scoring import MosReport, score_study, write_details, write_mos_csv
from taskloss.readers.store import Store
from taskloss.readers.study import GROUND_TRUTH, CreatedStudy, create_study, read_results, reissue_token

__all__ = [
    "GROUND_TRUTH",
    "CreatedStudy",
    "Icc",
    "LikertScale",
    "MosReport",
    "Store",
    "admin_link",
    "category_counts",
    "create_app",
    "create_study",
    "fleiss_kappa",
    "holm",
    "icc",
    "make_server",
    "parse_scale",
    "read_results",
    "reader_link",
    "reissue_token",
    "score_study",
    "write_details",
    "write_mos_csv",
]
