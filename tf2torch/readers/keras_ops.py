"""The class names of Keras 3 operations (``keras.src.ops``), as plain data for the readers.

Keras 3 ``.h5`` files drop an op node's ``module``; a node is then an operation when its config lacks
``trainable`` (every layer's ``get_config`` writes it, an ``Operation``'s does not) *and* its class is one of
these. Made from the installed Keras 3.15 (every ``Operation`` subclass under ``keras.src.ops``).
"""

KERAS3_OP_CLASSES = frozenset({
    "Abs", "Absolute", "AdaptiveAveragePool", "AdaptiveMaxPool", "Add", "AffineTransform", "All", "AllClose", "Amax",
    "Amin", "Angle", "Any", "Append", "Arange", "Arccos", "Arccosh", "Arcsin", "Arcsinh", "Arctan", "Arctan2",
    "Arctanh", "Argmax", "Argmin", "Argpartition", "Argsort", "Array", "ArraySplit", "AssociativeScan", "Average",
    "AveragePool", "BatchNorm", "BinaryCrossentropy", "Bincount", "BitwiseAnd", "BitwiseInvert", "BitwiseLeftShift",
    "BitwiseNot", "BitwiseOr", "BitwiseRightShift", "BitwiseXor", "BroadcastTo", "CDist", "CTCDecode", "CTCLoss",
    "Cast", "CategoricalCrossentropy", "Cbrt", "Ceil", "Celu", "Cholesky", "CholeskyInverse", "Clip", "Concatenate",
    "Cond", "Conj", "Conjugate", "Conv", "ConvTranspose", "ConvertToTensor", "Copy", "Corrcoef", "Correlate", "Cos",
    "Cosh", "CountNonzero", "CropImages", "Cross", "Cumprod", "Cumsum", "Deg2rad", "DepthToSpace", "DepthwiseConv",
    "Det", "Diag", "Diagflat", "Diagonal", "Diff", "Digitize", "Divide", "DivideNoNan", "Dot", "DotProductAttention",
    "Dsplit", "Dstack", "DummyLayer", "Eig", "Eigh", "Einsum", "ElasticTransform", "Elu", "EmptyLike", "Equal",
    "Erf", "Erfc", "Erfinv", "Exp", "Exp2", "ExpandDims", "Expm1", "ExtractPatches", "ExtractSequences", "FFT",
    "FFT2", "Fabs", "Flip", "Fliplr", "Flipud", "Floor", "FloorDivide", "Fmax", "Fmin", "Fmod", "Fold", "ForiLoop",
    "Full", "FullLike", "Function", "GaussianBlur", "Gcd", "Gelu", "Geomspace", "GetItem", "Glu", "Greater",
    "GreaterEqual", "HSVToRGB", "HardShrink", "HardSigmoid", "HardSilu", "HardTanh", "Heaviside", "Histogram",
    "Hsplit", "Hstack", "Hypot", "I0", "IFFT2", "IRFFT", "ISTFT", "Imag", "InTopK", "Inner", "Inv", "IsIn",
    "Isclose", "Isfinite", "Isinf", "Isnan", "Isneginf", "Isposinf", "Isreal", "JVP", "Kron", "LayerNorm", "Lcm",
    "Ldexp", "LeakyRelu", "LeftShift", "Less", "LessEqual", "Linspace", "Log", "Log10", "Log1p", "Log2",
    "LogSigmoid", "LogSoftmax", "Logaddexp", "Logaddexp2", "Logdet", "LogicalAnd", "LogicalNot", "LogicalOr",
    "LogicalXor", "Logspace", "Logsumexp", "Lstsq", "LuFactor", "Map", "MapCoordinates", "Matmul", "MatrixRank",
    "Max", "MaxPool", "Maximum", "Mean", "Median", "Meshgrid", "Min", "Minimum", "Mod", "Moments", "Moveaxis",
    "MultiHot", "Multiply", "NanToNum", "Nanargmax", "Nanargmin", "Nancumprod", "Nancumsum", "Nanmax", "Nanmean",
    "Nanmedian", "Nanmin", "Nanpercentile", "Nanprod", "Nanquantile", "Nanstd", "Nansum", "Nanvar", "Ndim",
    "Negative", "Nextafter", "Nonzero", "Norm", "Normalize", "NotEqual", "OneHot", "OnesLike", "Outer", "PSNR",
    "Pad", "PadImages", "Percentile", "PerspectiveTransform", "Pinv", "Polar", "Power", "Prod", "Ptp", "Qr",
    "Quantile", "RFFT", "RGBToGrayscale", "RGBToHSV", "RMSNorm", "Rad2deg", "Ravel", "Real", "Rearrange",
    "Reciprocal", "Relu", "Relu6", "Repeat", "Reshape", "Resize", "RightShift", "Roll", "Rot90", "Round", "Rsqrt",
    "SSIM", "STFT", "SVD", "SaturateCast", "ScaleAndTranslate", "Scan", "Scatter", "ScatterUpdate", "SearchSorted",
    "SegmentMax", "SegmentMin", "SegmentProd", "SegmentReduction", "SegmentSum", "Select", "Selu", "SeparableConv",
    "Sigmoid", "Sign", "Signbit", "Silu", "Sin", "Sinc", "Sinh", "Size", "Slice", "SliceUpdate", "Slogdet",
    "SobelEdges", "SoftShrink", "Softmax", "Softplus", "Softsign", "Solve", "SolveTriangular", "Sort",
    "SpaceToDepth", "SparseCategoricalCrossentropy", "SparsePlus", "SparseSigmoid", "Sparsemax", "Split", "Sqrt",
    "Square", "Squareplus", "Squeeze", "Stack", "Std", "StopGradient", "Subtract", "Sum", "Swapaxes", "Switch",
    "Take", "TakeAlongAxis", "Tan", "Tanh", "TanhShrink", "Tensordot", "Threshold", "Tile", "TopK", "Trace",
    "Transpose", "Trapezoid", "Tril", "Triu", "TrueDivide", "Trunc", "Unfold", "Unique", "UnravelIndex", "Unstack",
    "Vander", "Var", "Vdot", "VectorizedMap", "View", "ViewAsComplex", "ViewAsReal", "Vsplit", "Vstack", "Where",
    "WhileLoop", "ZerosLike",
})
