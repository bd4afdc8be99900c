"""Cached, content-keyed loaders (heavy work runs once per distinct input)."""

from __future__ import annotations

import copy

import streamlit as st

from core.data import EvalData, load_npz, load_torchvision_dataset
from core.models import load_model, load_uploaded_model
from core.workspace import Workspace, builtin_data, evaluate_report, open_workspace


@st.cache_resource(show_spinner=False, max_entries=8)
def _zoo_workspace(name: str, data: str, weights: str, input_size: int | None, seed: int) -> Workspace:
    return open_workspace(name, data=data, weights=weights, input_size=input_size, seed=seed)


def zoo_workspace(name: str, data: str, weights: str = "default", input_size: int | None = None,
                  seed: int = 0) -> Workspace:
    """A shallow copy, so a page replacing ``ws.data`` cannot change the cached one."""
    return copy.copy(_zoo_workspace(name, data, weights, input_size, seed))


@st.cache_resource(show_spinner=False, max_entries=4)
def uploaded_model(raw: bytes, architecture: str | None, num_classes: int):
    # st.cache_resource hashes the bytes, so entries are keyed on content.
    return load_uploaded_model(raw, architecture=architecture, num_classes=num_classes)


@st.cache_data(show_spinner=False, max_entries=4)
def uploaded_data(raw: bytes, name: str) -> EvalData:
    return load_npz(raw, name=name)


@st.cache_data(show_spinner=False, max_entries=2)
def torchvision_data(name: str, root: str, download: bool) -> EvalData:
    return load_torchvision_dataset(name, root, download=download)


@st.cache_data(show_spinner=False, max_entries=16, hash_funcs={Workspace: lambda ws: ws.cache_key()})
def model_report(ws: Workspace) -> dict:
    return evaluate_report(ws, latency_repeats=10)


__all__ = ["builtin_data", "load_model", "model_report", "uploaded_data", "uploaded_model", "zoo_workspace"]
