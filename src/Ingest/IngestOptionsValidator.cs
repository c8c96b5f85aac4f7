using Microsoft.Extensions.Options;

namespace PrefPipe.Ingest;

/// <summary>Checks <see cref="IngestOptions"/>: generated from its attributes, with its cross-field rules.</summary>
[OptionsValidator]
internal sealed partial class IngestOptionsValidator : IValidateOptions<IngestOptions>;
