using Microsoft.AspNetCore.Http;

namespace JobLog;

/// <summary>Options of <c>app.UseJobLogRequests(o => ...)</c>. Masking and size bounds come from <see cref="RedactionOptions"/>.</summary>
public sealed class JobLogRequestOptions
{
    /// <summary>Path prefixes whose requests are not recorded (for example <c>/healthz</c>). Default empty.</summary>
    public IList<PathString> ExcludedPaths { get; } = [];

    /// <summary>Record request bodies (masked, bounded). Default true.</summary>
    public bool RecordRequestBody { get; set; } = true;

    /// <summary>Record response bodies of the text content types in <see cref="RedactionOptions.TextContentTypes"/>. Default true.</summary>
    public bool RecordResponseBody { get; set; } = true;
}
