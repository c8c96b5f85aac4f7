using Microsoft.Extensions.Options;

namespace PrefPipe.Splitter;

/// <summary>Checks <see cref="SplitterOptions"/>: generated from its attributes, with its cross-field rules.</summary>
[OptionsValidator]
internal sealed partial class SplitterOptionsValidator : IValidateOptions<SplitterOptions>;
