using JobLog.Internal;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace JobLog;

/// <summary>
/// Options of <c>app.UseJobLogRequests(o => ...)</c>, validated when the middleware is added. Masking and size bounds come
/// from <see cref="RedactionOptions"/>.
/// </summary>
public sealed class JobLogRequestOptions
{
    /// <summary>Path prefixes whose requests are not recorded (for example <c>/healthz</c>). Default empty.</summary>
    public IList<PathString> ExcludedPaths { get; } = [];

    /// <summary>Record request bodies (masked, bounded). Default true.</summary>
    public bool RecordRequestBody { get; set; } = true;

    /// <summary>
    /// How long the start of a request body is awaited before the endpoint runs, so that the INCOMPLETE record already
    /// holds it. Default 500 ms: a client that sends slowly delays its request by that much at most, and the rest of the
    /// body is still captured as the endpoint reads it. Not negative.
    /// </summary>
    [NotNegative]
    [AtMostDays(30)]
    public TimeSpan ReadAheadTimeout { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Record response bodies of the text content types in <see cref="RedactionOptions.TextContentTypes"/>. Default true.</summary>
    public bool RecordResponseBody { get; set; } = true;
}

/// <summary>Rejects request logging options out of range (generated from the attributes on <see cref="JobLogRequestOptions"/>).</summary>
[OptionsValidator]
internal sealed partial class JobLogRequestOptionsValidator : IValidateOptions<JobLogRequestOptions>;
