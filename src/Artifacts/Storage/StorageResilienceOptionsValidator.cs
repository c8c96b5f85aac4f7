using Microsoft.Extensions.Options;

namespace PrefPipe.Artifacts.Storage;

/// <summary>Checks <see cref="StorageResilienceOptions"/>: generated from its attributes, with the timeout rule.</summary>
[OptionsValidator]
internal sealed partial class StorageResilienceOptionsValidator : IValidateOptions<StorageResilienceOptions>;
