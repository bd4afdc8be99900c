"""Model: choose or upload a network and its evaluation data; see its units, size, accuracy, latency."""

from pathlib import Path

import streamlit as st

from core.data.uploads import TORCHVISION_DATASETS
from core.models import list_models
from core.workspace import workspace_from_model
from ui import loaders
from ui.common import MODEL_REPORT, WORKSPACE, guarded, human_bits, page_intro
from ui.state import reset_downstream

page_intro(
    "Model",
    "Pick the network to compress and the data to judge it on. Built-in digits models load instantly with "
    "trained weights; torchvision architectures start from random weights unless you are online or upload your own.",
)

specs = {s.name: s for s in list_models()}
builtin = [n for n, s in specs.items() if s.family == "builtin"]
torchvision_names = [n for n, s in specs.items() if s.family == "torchvision"]

settings, results = st.columns([1, 2], gap="large")

with settings:
    st.subheader("Settings")
    source = st.radio("Model source", ["Built-in", "torchvision", "Upload"], horizontal=True, key="model_source")
    if source == "Built-in":
        name = st.selectbox("Model", builtin, key="builtin_model",
                            format_func=lambda n: f"{n}: {specs[n].description}")
    elif source == "torchvision":
        name = st.selectbox("Architecture", torchvision_names, key="tv_model",
                            format_func=lambda n: f"{n}: {specs[n].description}")
        input_size = st.select_slider("Input size (pixels)", options=[32, 64, 96, 128, 224], value=32,
                                      key="tv_input_size")
        weights = st.radio("Weights", ["random", "pretrained"], horizontal=True, key="tv_weights",
                           help="Pretrained weights are downloaded from PyTorch's servers and need a network.")
    else:
        upload = st.file_uploader("Model file (.pt, .pth or TorchScript .zip)", type=["pt", "pth", "zip", "ts"],
                                  key="model_upload")
        architecture = st.selectbox(
            "What the file is", ["TorchScript archive", *specs], key="upload_arch",
            help="A TorchScript archive carries its own architecture; a state_dict needs the architecture it "
                 "was saved from.",
        )
        num_classes = st.number_input("Classes", min_value=2, max_value=1000, value=10, key="upload_classes")
        c1, c2 = st.columns(2)
        channels = c1.number_input("Input channels", 1, 4, value=1, key="upload_channels")
        size = c2.number_input("Input size", 8, 512, value=8, key="upload_size")

    data_choice = st.selectbox(
        "Evaluation data", ["digits", "random", "upload .npz", "torchvision data set"], key="data_choice",
        help="digits: scikit-learn's handwritten digits test split (resized for larger models); 256 of its training images "
             "calibrate. random: Gaussian noise with random labels, for calibration only (its accuracy means "
             "nothing). An uploaded or torchvision set is split: up to 256 examples (at most half) calibrate and "
             "only the others are scored.",
    )
    npz = None
    if data_choice == "torchvision data set":
        tv_data = st.selectbox("Data set", list(TORCHVISION_DATASETS), key="tv_data")
        tv_root = st.text_input("Folder holding it", value=str(Path.home() / "data"), key="tv_root")
        tv_download = st.toggle("Download if missing (needs a network)", key="tv_download")
    if data_choice == "upload .npz":
        npz = st.file_uploader("Data file: .npz with images (N,C,H,W) and labels (N,)", type=["npz"],
                               key="data_upload")
    load = st.button("Load model", type="primary", key="load_model", width="stretch")


def _load():
    data = "digits" if data_choice == "digits" else "random"
    if data_choice == "upload .npz":
        if npz is None:
            st.warning("Choose a .npz file to upload first.")
            return None
        data = loaders.uploaded_data(npz.getvalue(), npz.name)
    if data_choice == "torchvision data set":
        data = loaders.torchvision_data(tv_data, tv_root, tv_download)
    if source == "Built-in":
        if isinstance(data, str):
            return loaders.zoo_workspace(name, data)
        return workspace_from_model(name, loaders.load_model(name), data=data)
    if source == "torchvision":
        if isinstance(data, str):
            return loaders.zoo_workspace(name, data, weights=weights, input_size=input_size)
        return workspace_from_model(name, loaders.load_model(name, weights=weights), data=data)
    if upload is None:
        st.warning("Choose a model file to upload first.")
        return None
    arch = None if architecture == "TorchScript archive" else architecture
    model = loaders.uploaded_model(upload.getvalue(), arch, int(num_classes))
    return workspace_from_model(f"upload:{upload.name}", model, data=data,
                                input_shape=(int(channels), int(size), int(size)))


if load:
    with results, st.spinner("Loading and checking the model..."):
        ws = guarded(_load, action="Loading the model")
    if ws is not None:
        with results, st.spinner("Measuring accuracy and latency..."):
            report = guarded(loaders.model_report, ws, action="Evaluating the model")
        if report is not None:
            st.session_state[WORKSPACE] = ws
            st.session_state[MODEL_REPORT] = report
            reset_downstream()

with results:
    ws = st.session_state.get(WORKSPACE)
    report = st.session_state.get(MODEL_REPORT)
    if ws is None or report is None:
        st.info("No model loaded yet: choose one on the left and press **Load model**.")
    else:
        st.subheader(f"{ws.model_name}")
        m = st.columns(4)
        m[0].metric("Accuracy", f"{report['accuracy']:.1%}", help=f"on {report['num_examples']} examples of {report['data']}")
        m[1].metric("Parameters", f"{report['params']:,}")
        m[2].metric("Size (fp32)", human_bits(report["size_bits"]))
        lat = report["latency"]
        m[3].metric("Latency / image", f"{lat['ms_per_image']['1']:.3f} ms",
                    help=f"batch 1, median of {lat['repeats']} runs, {lat['threads']} thread(s); "
                         f"batch 64: {lat['ms_per_image']['64']:.4f} ms per image")
        if report["data"].startswith("random"):
            st.caption("Evaluated on random data: the accuracy is chance level and only the sizes and speeds matter.")
        elif report["num_examples"] < 100:
            st.caption(f"Scored on {report['num_examples']} examples ({len(ws.calibration)} more calibrate): "
                       f"accuracy moves in steps of {1 / report['num_examples']:.1%}, so small differences are noise.")
        st.markdown("**Compressible units** (every Conv2d and Linear layer)")
        st.dataframe(
            report["units"], width="stretch", hide_index=True,
            column_order=["name", "kind", "shape", "params", "out_channels", "groups", "safe_to_prune", "reason"],
            column_config={"safe_to_prune": st.column_config.CheckboxColumn("safe to prune"),
                           "reason": st.column_config.TextColumn("why not", width="large")},
        )
