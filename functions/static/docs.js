// The API's own document (/api/v1/openapi.json) rendered by Swagger UI, vendored: nothing
// is fetched from elsewhere, and "Try it out" calls this API with the token given under
// "Authorize" (kept in this page only).
window.ui = SwaggerUIBundle({
  url: "api/v1/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  defaultModelsExpandDepth: 0,
});
