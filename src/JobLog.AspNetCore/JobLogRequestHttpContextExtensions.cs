using JobLog.AspNetCore.Requests;

namespace Microsoft.AspNetCore.Http;

/// <summary>What the application tells JobLog about the current request.</summary>
public static class JobLogRequestHttpContextExtensions
{
    /// <summary>
    /// Marks the current request as a login attempt: its <c>Type</c> becomes SUCCESSFUL_LOGIN or UNSUCCESSFUL_LOGIN
    /// (THROTTLED still wins when the rate limiter rejected it). The last call wins. Does nothing when the request is
    /// not recorded (no <c>UseJobLogRequests</c>, or an exempt endpoint).
    /// </summary>
    /// <param name="context">The request.</param>
    /// <param name="succeeded">True when the credentials were accepted.</param>
    public static void MarkJobLogLogin(this HttpContext context, bool succeeded)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.Features.Get<RequestRecording>()?.MarkLogin(succeeded);
    }
}
